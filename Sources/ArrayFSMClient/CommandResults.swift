// ArrayFSMClient — the scheduler's side of the wire contract: commands sent over Kafka, typed
// answers read from a private reply topic. Knows no SQL and nothing of serve's internals.

/// The typed `result` of one command type (docs/contract.md, "Commands and their result payloads").
///
/// A result too large for one event arrives in parts; ``merging(_:)`` adds a later part's ids to
/// this one, so callers never see a split. Scalars come from the first part.
public protocol CommandResult: Decodable, Sendable {
    /// This result with the ids of `later` (the next part) added.
    func merging(_ later: Self) -> Self
}

extension CommandResult {
    /// Results that are never split: the first part is the whole.
    public func merging(_ later: Self) -> Self { self }
}

/// `add_array`: the array's id, and whether this command created it.
public struct AddArrayResult: CommandResult, Equatable {
    public var arrayID: Int64
    public var created: Bool

    enum CodingKeys: String, CodingKey { case arrayID = "array_id", created }
}

/// `record_array_batch_num`: the batches it opened and every requested task by its status.
public struct RecordArrayBatchNumResult: CommandResult, Equatable {
    /// One batch: its instances, ordered by step id.
    public struct Batch: Decodable, Sendable, Equatable {
        public var batchNumber: Int32
        public var taskInstanceIDs: [Int64]

        enum CodingKeys: String, CodingKey { case batchNumber = "batch_number", taskInstanceIDs = "task_instance_ids" }
    }

    public var batches: [Batch]
    /// Task status → task ids, covering every requested id.
    public var tasksByStatus: [String: [Int64]]

    enum CodingKeys: String, CodingKey { case batches, tasksByStatus = "tasks_by_status" }

    public func merging(_ later: Self) -> Self {
        var merged = self
        for batch in later.batches {
            if let index = merged.batches.firstIndex(where: { $0.batchNumber == batch.batchNumber }) {
                merged.batches[index].taskInstanceIDs += batch.taskInstanceIDs
            } else {
                merged.batches.append(batch)
            }
        }
        merged.tasksByStatus.merge(later.tasksByStatus) { $0 + $1 }
        return merged
    }
}

/// A batch-wide transition (`instantiate_array_batch`, `transition_array_to_launched`,
/// `log_array_submit_failed`, `transition_to_killed`): how many instances and tasks it moved.
public struct BatchTransitionResult: CommandResult, Equatable {
    public var taskInstances: Int
    public var tasks: Int

    enum CodingKeys: String, CodingKey { case taskInstances = "task_instances", tasks }
}

/// `log_array_distributor_id`: instances updated, and the listed ones left alone (not in a state
/// that takes a distributor id).
public struct LogArrayDistributorIDResult: CommandResult, Equatable {
    public var taskInstances: Int
    public var skippedTaskInstanceIDs: [Int64]

    enum CodingKeys: String, CodingKey { case taskInstances = "task_instances", skippedTaskInstanceIDs = "skipped_task_instance_ids" }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        taskInstances = try container.decode(Int.self, forKey: .taskInstances)
        skippedTaskInstanceIDs = try container.decodeIfPresent([Int64].self, forKey: .skippedTaskInstanceIDs) ?? []
    }

    public func merging(_ later: Self) -> Self {
        var merged = self
        merged.skippedTaskInstanceIDs += later.skippedTaskInstanceIDs
        return merged
    }
}

/// `get_array_max_concurrently_running`.
public struct MaxConcurrentlyRunningResult: CommandResult, Equatable {
    public var arrayID: Int64
    public var maxConcurrentlyRunning: Int64

    enum CodingKeys: String, CodingKey { case arrayID = "array_id", maxConcurrentlyRunning = "max_concurrently_running" }
}

/// `instantiate_task_instances`: Jobmon's `task_instance_batches`.
public struct TaskInstanceBatchesResult: CommandResult, Equatable {
    /// One entry, on the wire `[array_id, array_name, array_batch_num, task_resources_id, [ids]]`.
    public struct Batch: Decodable, Sendable, Equatable {
        public var arrayID: Int64
        public var arrayName: String?
        public var arrayBatchNumber: Int32
        public var taskResourcesID: Int64?
        public var taskInstanceIDs: [Int64]

        public init(from decoder: any Decoder) throws {
            var entry = try decoder.unkeyedContainer()
            arrayID = try entry.decode(Int64.self)
            arrayName = try entry.decodeIfPresent(String.self)
            arrayBatchNumber = try entry.decode(Int32.self)
            taskResourcesID = try entry.decodeIfPresent(Int64.self)
            taskInstanceIDs = try entry.decode([Int64].self)
        }

        func isSameBatch(as other: Batch) -> Bool {
            (arrayID, arrayName, arrayBatchNumber, taskResourcesID) == (other.arrayID, other.arrayName, other.arrayBatchNumber, other.taskResourcesID)
        }
    }

    public var taskInstanceBatches: [Batch]

    enum CodingKeys: String, CodingKey { case taskInstanceBatches = "task_instance_batches" }

    public func merging(_ later: Self) -> Self {
        var merged = self
        for batch in later.taskInstanceBatches {
            if let index = merged.taskInstanceBatches.firstIndex(where: { $0.isSameBatch(as: batch) }) {
                merged.taskInstanceBatches[index].taskInstanceIDs += batch.taskInstanceIDs
            } else {
                merged.taskInstanceBatches.append(batch)
            }
        }
        return merged
    }
}
