// ArrayFSMLoad — load-test tooling: topic dumps (kcat -J), replay, workload generation, seeding.
// Uses Kafka and PostgreSQL directly; never the service.
import Foundation

/// Writes a generated workload as a topic dump: per array, the lifecycle a scheduler and a
/// distributor drive — add_array, then per batch of ≤ `batchSize` tasks: (a periodic limit read),
/// record_array_batch_num, instantiate_array_batch, then transition_array_to_launched and
/// log_array_distributor_id (by batch and step), or log_array_submit_failed for a failed
/// submission, and for a fraction of launched batches transition_to_killed.
///
/// Arrays take turns, one command each, so keys interleave as they do in production while each
/// array's commands stay in order. (Setting instances to K is the resume path's work, outside
/// arrayfsm's commands: a generated kill finds none and moves nothing, as Jobmon's route would.)
public struct WorkloadGenerator: Sendable {
    public var spec: LoadSpec
    public var topic: String

    public init(spec: LoadSpec, topic: String = "arrayfsm.commands") {
        self.spec = spec
        self.topic = topic
    }

    /// What the workload leaves in the database, per array: batches and their final statuses.
    public struct Expectation: Sendable, Hashable {
        public var arrayID: Int64
        /// Batch number → final task-instance status (O launched or W submit failed).
        public var batchStatus: [Int32: String]
        public var batchSizes: [Int32: Int]
    }

    /// Calls `write` with each dump record, in order; returns the expectations for checking.
    @discardableResult
    public func generate(write: (TopicDumpRecord) throws -> Void) rethrows -> [Expectation] {
        var random = SplitMix64(seed: spec.seed ^ 0xA5A5_A5A5_A5A5_A5A5)
        let arrays = spec.plan()
        var queues: [[(key: String, type: String, payload: [String: Any])]] = []
        var expectations: [Expectation] = []
        for array in arrays {
            var queue: [(key: String, type: String, payload: [String: Any])] = []
            var expectation = Expectation(arrayID: array.arrayID, batchStatus: [:], batchSizes: [:])
            let arrayKey = String(array.arrayID)
            queue.append(("wf-\(array.workflowID)", "add_array", [
                "workflow_id": array.workflowID, "task_template_version_id": array.taskTemplateVersionID,
                "max_concurrently_running": 10_000, "name": "array-\(array.arrayID)",
            ]))
            let taskIDs = Array(array.taskIDs)
            var batch: Int32 = 0
            for start in stride(from: 0, to: taskIDs.count, by: spec.batchSize) {
                batch += 1
                let chunk = Array(taskIDs[start..<min(start + spec.batchSize, taskIDs.count)])
                if (Int(batch) - 1) % spec.maxConcurrencyReadEvery == 0 {
                    queue.append((arrayKey, "get_array_max_concurrently_running", ["array_id": array.arrayID]))
                }
                queue.append((arrayKey, "record_array_batch_num", [
                    "array_id": array.arrayID, "task_ids": chunk, "task_resources_id": 1, "workflow_run_id": array.workflowID,
                ]))
                queue.append((arrayKey, "instantiate_array_batch", ["array_id": array.arrayID, "batch_number": batch]))
                expectation.batchSizes[batch] = chunk.count
                if random.unit() < spec.submitFailureFraction {
                    queue.append((arrayKey, "log_array_submit_failed", ["array_id": array.arrayID, "batch_number": batch]))
                    expectation.batchStatus[batch] = "W"
                    continue
                }
                queue.append((arrayKey, "transition_array_to_launched", [
                    "array_id": array.arrayID, "batch_number": batch, "next_report_increment": 279,
                ]))
                let jobID = 5_000_000 + Int(array.arrayID % 1_000_000) * 1000 + Int(batch)
                var steps: [String: String] = [:]
                for step in 0..<chunk.count { steps[String(step)] = "\(jobID)_\(step)" }
                queue.append((arrayKey, "log_array_distributor_id", [
                    "array_id": array.arrayID, "batch_number": batch, "distributor_ids_by_step": steps,
                    "stdout": "/logs/\(array.workflowID)/{distributor_id}.out", "stderr": "/logs/\(array.workflowID)/{distributor_id}.err",
                ]))
                expectation.batchStatus[batch] = "O"
                if random.unit() < spec.killFraction {
                    queue.append((arrayKey, "transition_to_killed", ["array_id": array.arrayID, "batch_number": batch]))
                }
            }
            queues.append(queue)
            expectations.append(expectation)
        }

        // Round robin over the arrays, one command each turn.
        var offset: Int64 = 0
        let baseTimestamp: Int64 = 1_796_000_000_000
        var positions = Array(repeating: 0, count: queues.count)
        var remaining = queues.reduce(0) { $0 + $1.count }
        while remaining > 0 {
            for index in queues.indices where positions[index] < queues[index].count {
                let command = queues[index][positions[index]]
                positions[index] += 1
                remaining -= 1
                let envelope: [String: Any] = [
                    "command_id": "gen-\(spec.seed)-\(offset)", "type": command.type, "version": 1, "payload": command.payload,
                ]
                let value = try! JSONSerialization.data(withJSONObject: envelope, options: [.sortedKeys, .withoutEscapingSlashes])
                try write(TopicDumpRecord(
                    topic: topic, partition: 0, offset: offset, timestamp: baseTimestamp + offset,
                    key: Array(command.key.utf8), payload: Array(value)))
                offset += 1
            }
        }
        return expectations
    }
}
