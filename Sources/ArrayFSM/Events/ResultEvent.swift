// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
import Foundation

/// The answer to one command, published on the results topic (contract: "Result event").
public struct ResultEvent: Sendable, Encodable {
    public enum Status: String, Sendable, Encodable {
        case ok
        case rejected
    }

    /// Why a command was rejected.
    public struct ErrorBody: Sendable, Encodable, Hashable {
        public var code: String
        public var message: String

        public init(code: String, message: String) {
            self.code = code
            self.message = message
        }
    }

    public var eventID: String
    public var commandID: String
    public var type: String
    public var status: Status
    public var result: ResultPayload?
    public var error: ErrorBody?
    public var processedAt: String
    public var durationMS: Double
    public var part: Int?
    public var parts: Int?

    public init(
        eventID: String, commandID: String, type: String, status: Status, result: ResultPayload?, error: ErrorBody?,
        processedAt: String, durationMS: Double, part: Int? = nil, parts: Int? = nil
    ) {
        self.eventID = eventID
        self.commandID = commandID
        self.type = type
        self.status = status
        self.result = result
        self.error = error
        self.processedAt = processedAt
        self.durationMS = durationMS
        self.part = part
        self.parts = parts
    }

    enum CodingKeys: String, CodingKey {
        case eventID = "event_id", commandID = "command_id", type, status, result, error
        case processedAt = "processed_at", durationMS = "duration_ms", part, parts
    }
}

/// The `result` object of an `ok` result event, one shape per command type.
public enum ResultPayload: Sendable, Encodable {
    case addArray(AddArray.Output)
    case recordArrayBatchNum(batches: [RecordArrayBatchNum.Batch], tasksByStatus: [String: [Int64]])
    case batchTransition(taskInstances: Int, tasks: Int)
    case logArrayDistributorID(taskInstances: Int, skipped: [Int64])
    case maxConcurrentlyRunning(GetArrayMaxConcurrentlyRunning.Output)
    /// Jobmon's wire shape: `[array_id, array_name, array_batch_num, task_resources_id, [ti ids]]`.
    case taskInstanceBatches([InstantiateTaskInstances.Batch])

    enum Keys: String, CodingKey {
        case arrayID = "array_id", created, batches, tasksByStatus = "tasks_by_status"
        case taskInstances = "task_instances", tasks, skipped = "skipped_task_instance_ids"
        case maxConcurrentlyRunning = "max_concurrently_running"
        case batchNumber = "batch_number", taskInstanceIDs = "task_instance_ids"
        case taskInstanceBatches = "task_instance_batches"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        switch self {
        case .addArray(let output):
            try c.encode(output.arrayID, forKey: .arrayID)
            try c.encode(output.created, forKey: .created)
        case .recordArrayBatchNum(let batches, let tasksByStatus):
            var list = c.nestedUnkeyedContainer(forKey: .batches)
            for batch in batches {
                var item = list.nestedContainer(keyedBy: Keys.self)
                try item.encode(batch.batchNumber, forKey: .batchNumber)
                try item.encode(batch.taskInstanceIDs, forKey: .taskInstanceIDs)
            }
            try c.encode(tasksByStatus, forKey: .tasksByStatus)
        case .batchTransition(let taskInstances, let tasks):
            try c.encode(taskInstances, forKey: .taskInstances)
            try c.encode(tasks, forKey: .tasks)
        case .logArrayDistributorID(let taskInstances, let skipped):
            try c.encode(taskInstances, forKey: .taskInstances)
            if !skipped.isEmpty { try c.encode(skipped, forKey: .skipped) }
        case .maxConcurrentlyRunning(let output):
            try c.encode(output.arrayID, forKey: .arrayID)
            try c.encode(output.maxConcurrentlyRunning, forKey: .maxConcurrentlyRunning)
        case .taskInstanceBatches(let batches):
            var list = c.nestedUnkeyedContainer(forKey: .taskInstanceBatches)
            for batch in batches {
                var item = list.nestedUnkeyedContainer()
                try item.encode(batch.arrayID)
                try item.encode(batch.arrayName)
                try item.encode(batch.batchNumber)
                if let resources = batch.taskResourcesID { try item.encode(resources) } else { try item.encodeNil() }
                try item.encode(batch.taskInstanceIDs)
            }
        }
    }

    /// Ids the payload carries; a result is split into parts when they make it too large.
    public var idCount: Int {
        switch self {
        case .recordArrayBatchNum(let batches, let byStatus):
            batches.reduce(0) { $0 + $1.taskInstanceIDs.count } + byStatus.values.reduce(0) { $0 + $1.count }
        case .logArrayDistributorID(_, let skipped): skipped.count
        case .taskInstanceBatches(let batches): batches.reduce(0) { $0 + $1.taskInstanceIDs.count }
        default: 0
        }
    }

    /// Splits the id lists so that no part carries more than `maxIDs` ids; scalars go in part one.
    public func split(maxIDs: Int) -> [ResultPayload] {
        guard idCount > maxIDs else { return [self] }
        switch self {
        case .recordArrayBatchNum(let batches, let byStatus):
            var parts: [ResultPayload] = []
            var batchesPart: [RecordArrayBatchNum.Batch] = []
            var statusPart: [String: [Int64]] = [:]
            var room = maxIDs
            func flush() {
                parts.append(.recordArrayBatchNum(batches: batchesPart, tasksByStatus: statusPart))
                batchesPart = []
                statusPart = [:]
                room = maxIDs
            }
            for batch in batches {
                var rest = batch.taskInstanceIDs[...]
                while !rest.isEmpty {
                    if room == 0 { flush() }
                    let take = rest.prefix(room)
                    batchesPart.append(.init(batchNumber: batch.batchNumber, taskInstanceIDs: Array(take)))
                    rest = rest.dropFirst(take.count)
                    room -= take.count
                }
            }
            for status in byStatus.keys.sorted() {
                var rest = byStatus[status]![...]
                while !rest.isEmpty {
                    if room == 0 { flush() }
                    let take = rest.prefix(room)
                    statusPart[status, default: []] += take
                    rest = rest.dropFirst(take.count)
                    room -= take.count
                }
            }
            if !batchesPart.isEmpty || !statusPart.isEmpty { flush() }
            return parts
        case .logArrayDistributorID(let count, let skipped):
            return stride(from: 0, to: skipped.count, by: maxIDs).enumerated().map { index, start in
                .logArrayDistributorID(taskInstances: index == 0 ? count : 0,
                                       skipped: Array(skipped[start..<min(start + maxIDs, skipped.count)]))
            }
        case .taskInstanceBatches(let batches):
            // A batch split over parts appears in each with some of its ids; the parts' ids
            // together are the batch's.
            var parts: [[InstantiateTaskInstances.Batch]] = [[]]
            var room = maxIDs
            for batch in batches {
                var rest = batch.taskInstanceIDs[...]
                while !rest.isEmpty {
                    if room == 0 {
                        parts.append([])
                        room = maxIDs
                    }
                    var piece = batch
                    piece.taskInstanceIDs = Array(rest.prefix(room))
                    parts[parts.count - 1].append(piece)
                    rest = rest.dropFirst(piece.taskInstanceIDs.count)
                    room -= piece.taskInstanceIDs.count
                }
            }
            return parts.map { .taskInstanceBatches($0) }
        default:
            return [self]
        }
    }
}
