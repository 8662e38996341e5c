// ArrayFSMClient — the scheduler's side of the wire contract: commands sent over Kafka, typed
// answers read from a private reply topic. Knows no SQL and nothing of serve's internals.
import Foundation

/// One command as a client sends it: its id, type, payload and message key.
///
/// The typed constructors build each command type's payload and the contract's key (the decimal
/// array id for commands on one array, so one array's commands are applied in the order sent;
/// `wf-<workflow_id>` for `add_array` and lookups by workflow; `ti-<lowest id>` for
/// `instantiate_task_instances` when the array is not known).
public struct ArrayCommand: Sendable {
    /// The command's id: a repeat with the same id, type, key and payload is answered with the
    /// original result and never applied again.
    public var id: String
    public var type: String
    /// The payload object, as JSON.
    public var payload: [UInt8]
    public var key: [UInt8]
    /// A partition of the commands topic, instead of the one the key hashes to.
    public var partition: Int32?

    /// A command of any type from its payload JSON (a replayed workload, a type this client has
    /// no constructor for).
    public init(type: String, payload: [UInt8], key: [UInt8], id: String = UUID().uuidString, partition: Int32? = nil) {
        self.id = id
        self.type = type
        self.payload = payload
        self.key = key
        self.partition = partition
    }

    /// A command from a whole envelope as other producers write it (`command_id`, `type`,
    /// `payload`), such as a record of a topic dump; nil when it is not one.
    public init?(envelope: [UInt8], key: [UInt8]?, partition: Int32? = nil) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(envelope)) as? [String: Any],
              let id = object["command_id"] as? String, let type = object["type"] as? String,
              let payload = object["payload"] as? [String: Any],
              let bytes = try? JSONSerialization.data(withJSONObject: payload, options: [.sortedKeys])
        else { return nil }
        self.init(type: type, payload: Array(bytes), key: key ?? [], id: id, partition: partition)
    }

    init(_ type: String, _ payload: some Encodable, key: String, id: String?) {
        let encoder = JSONEncoder()
        // Sorted keys: the same command always has the same bytes, so a re-built repeat is a repeat.
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        self.init(type: type, payload: Array(try! encoder.encode(payload)), key: Array(key.utf8), id: id ?? UUID().uuidString)
    }
}

extension ArrayCommand {
    /// `add_array`: the array of (workflow, task template version), created unless it exists.
    public static func addArray(workflowID: Int64, taskTemplateVersionID: Int64, name: String? = nil,
                                maxConcurrentlyRunning: Int32? = nil, id: String? = nil) -> ArrayCommand {
        struct Payload: Encodable {
            var workflow_id: Int64, task_template_version_id: Int64, name: String?, max_concurrently_running: Int32?
        }
        return ArrayCommand("add_array", Payload(workflow_id: workflowID, task_template_version_id: taskTemplateVersionID, name: name,
                                                 max_concurrently_running: maxConcurrentlyRunning),
                            key: "wf-\(workflowID)", id: id)
    }

    /// `record_array_batch_num`: the tasks to I, and a new batch of instances for them.
    public static func recordArrayBatchNum(arrayID: Int64, taskIDs: [Int64], taskResourcesID: Int64, workflowRunID: Int64,
                                           id: String? = nil) -> ArrayCommand {
        struct Payload: Encodable { var array_id: Int64, task_ids: [Int64], task_resources_id: Int64, workflow_run_id: Int64 }
        return ArrayCommand("record_array_batch_num", Payload(array_id: arrayID, task_ids: taskIDs, task_resources_id: taskResourcesID,
                                                              workflow_run_id: workflowRunID),
                            key: String(arrayID), id: id)
    }

    /// `instantiate_array_batch`: a batch's instances Q → I.
    public static func instantiateArrayBatch(arrayID: Int64, batchNumber: Int32, id: String? = nil) -> ArrayCommand {
        batchCommand("instantiate_array_batch", arrayID: arrayID, batchNumber: batchNumber, id: id)
    }

    /// `instantiate_task_instances`: the distributor's Q → I step for the listed instances and
    /// their tasks. `arrayID`, when the caller knows the instances' array, keys the command with
    /// that array's other commands.
    public static func instantiateTaskInstances(taskInstanceIDs: [Int64], arrayID: Int64? = nil, id: String? = nil) -> ArrayCommand {
        struct Payload: Encodable { var task_instance_ids: [Int64] }
        let key = arrayID.map(String.init) ?? "ti-\(taskInstanceIDs.min() ?? 0)"
        return ArrayCommand("instantiate_task_instances", Payload(task_instance_ids: taskInstanceIDs), key: key, id: id)
    }

    /// `transition_array_to_launched`: a batch I → O, reporting by now + `nextReportIncrement` seconds.
    public static func transitionArrayToLaunched(arrayID: Int64, batchNumber: Int32, nextReportIncrement: Double,
                                                 id: String? = nil) -> ArrayCommand {
        struct Payload: Encodable { var array_id: Int64, batch_number: Int32, next_report_increment: Double }
        return ArrayCommand("transition_array_to_launched",
                            Payload(array_id: arrayID, batch_number: batchNumber, next_report_increment: nextReportIncrement),
                            key: String(arrayID), id: id)
    }

    /// `log_array_submit_failed`: a batch's instances I → W.
    public static func logArraySubmitFailed(arrayID: Int64, batchNumber: Int32, id: String? = nil) -> ArrayCommand {
        batchCommand("log_array_submit_failed", arrayID: arrayID, batchNumber: batchNumber, id: id)
    }

    /// `log_array_distributor_id` by task instance id (instance id → distributor id).
    public static func logArrayDistributorID(arrayID: Int64, distributorIDs: [Int64: String], id: String? = nil) -> ArrayCommand {
        struct Payload: Encodable { var array_id: Int64, distributor_ids: [String: String] }
        let ids = Dictionary(uniqueKeysWithValues: distributorIDs.map { (String($0.key), $0.value) })
        return ArrayCommand("log_array_distributor_id", Payload(array_id: arrayID, distributor_ids: ids), key: String(arrayID), id: id)
    }

    /// `log_array_distributor_id` by array step id within `batchNumber` (step → distributor id).
    public static func logArrayDistributorID(arrayID: Int64, batchNumber: Int32, distributorIDsByStep: [Int32: String],
                                             id: String? = nil) -> ArrayCommand {
        struct Payload: Encodable { var array_id: Int64, batch_number: Int32, distributor_ids_by_step: [String: String] }
        let ids = Dictionary(uniqueKeysWithValues: distributorIDsByStep.map { (String($0.key), $0.value) })
        return ArrayCommand("log_array_distributor_id", Payload(array_id: arrayID, batch_number: batchNumber, distributor_ids_by_step: ids),
                            key: String(arrayID), id: id)
    }

    /// `transition_to_killed`: a batch's instances in K → F.
    public static func transitionToKilled(arrayID: Int64, batchNumber: Int32, id: String? = nil) -> ArrayCommand {
        batchCommand("transition_to_killed", arrayID: arrayID, batchNumber: batchNumber, id: id)
    }

    /// `get_array_max_concurrently_running` for an array.
    public static func getArrayMaxConcurrentlyRunning(arrayID: Int64, id: String? = nil) -> ArrayCommand {
        struct Payload: Encodable { var array_id: Int64 }
        return ArrayCommand("get_array_max_concurrently_running", Payload(array_id: arrayID), key: String(arrayID), id: id)
    }

    /// `get_array_max_concurrently_running` for the array of (workflow, task template version).
    public static func getArrayMaxConcurrentlyRunning(workflowID: Int64, taskTemplateVersionID: Int64, id: String? = nil) -> ArrayCommand {
        struct Payload: Encodable { var workflow_id: Int64, task_template_version_id: Int64 }
        return ArrayCommand("get_array_max_concurrently_running",
                            Payload(workflow_id: workflowID, task_template_version_id: taskTemplateVersionID), key: "wf-\(workflowID)", id: id)
    }

    private static func batchCommand(_ type: String, arrayID: Int64, batchNumber: Int32, id: String?) -> ArrayCommand {
        struct Payload: Encodable { var array_id: Int64, batch_number: Int32 }
        return ArrayCommand(type, Payload(array_id: arrayID, batch_number: batchNumber), key: String(arrayID), id: id)
    }
}
