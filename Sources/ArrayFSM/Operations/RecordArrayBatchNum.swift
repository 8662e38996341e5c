import Logging
import PostgresNIO

/// `record_array_batch_num` (Jobmon's `queue_task_batch`): queues the array's tasks that are in
/// G (registering) or A (adjusting resources), creating one task instance per queued task.
///
/// The queued tasks are split in ascending task-id order into chunks of ``chunkSize``; each
/// chunk gets the array's next batch number and step ids 0..<n by task id. Tasks in any other
/// status get no task instance but are reported in ``Output/tasksByStatus`` like every requested id.
/// The whole command is one transaction. Ids that do not exist or belong to another array refuse
/// the command (`tasks_not_in_array`) before anything changes.
public struct RecordArrayBatchNum: ArrayOperation {
    public var arrayID: Int64
    public var taskIDs: [Int64]
    public var taskResourcesID: Int64
    public var workflowRunID: Int64
    /// Tasks per batch: the cluster's array-size cap. Jobmon uses 1000.
    public var chunkSize: Int32

    public init(arrayID: Int64, taskIDs: [Int64], taskResourcesID: Int64, workflowRunID: Int64, chunkSize: Int32 = 1000) {
        self.arrayID = arrayID
        self.taskIDs = taskIDs
        self.taskResourcesID = taskResourcesID
        self.workflowRunID = workflowRunID
        self.chunkSize = chunkSize
    }

    public struct Batch: Sendable, Hashable {
        public var batchNumber: Int32
        /// The new task instances, ordered by step id.
        public var taskInstanceIDs: [Int64]

        public init(batchNumber: Int32, taskInstanceIDs: [Int64]) {
            self.batchNumber = batchNumber
            self.taskInstanceIDs = taskInstanceIDs
        }
    }

    public struct Output: Sendable, Hashable {
        /// The batches opened, ascending; empty when no task was queued.
        public var batches: [Batch]
        /// Every requested id by its status after the operation, ids ascending.
        public var tasksByStatus: [String: [Int64]]
        public var transitions: [TransitionGroup]
    }

    public func validate() throws(OperationError) {
        try Check.id(arrayID, "array_id")
        try Check.ids(taskIDs, "task_ids")
        try Check.id(taskResourcesID, "task_resources_id")
        try Check.id(workflowRunID, "workflow_run_id")
        guard (1...100_000).contains(chunkSize) else {
            throw .invalid("chunk size must be in 1...100000, got \(chunkSize)")
        }
    }

    public func apply(on connection: PostgresConnection, logger: Logger) async throws -> Output {
        try await Self.applyGrouped([self], on: connection, logger: logger)[0].get()
    }

    /// Queues the tasks of many commands on distinct arrays with one statement per step (lock,
    /// status read, write) instead of three per command; results in input order, each exactly what
    /// applying its command alone would give. One command's refusal does not affect the others:
    /// refusals are decided before the write. The arrays must be distinct: two commands on one
    /// array would both number their batches from the same counter.
    public static func applyGrouped(
        _ operations: [RecordArrayBatchNum], on connection: PostgresConnection, logger: Logger
    ) async throws -> [Result<Output, OperationError>] {
        precondition(Set(operations.map(\.arrayID)).count == operations.count, "grouped commands must be on distinct arrays")
        let lastBatch = try await ArrayRowLock.acquire(operations.map(\.arrayID), on: connection, logger: logger)

        // Learn the requested tasks' statuses, and that they are their command's array's. No row
        // locks: a task never changes array, our own writers of these arrays' tasks wait on the
        // array rows, and the UPDATE below re-checks the status of each row it moves (so an outside
        // writer racing us only changes which tasks move, which the UPDATE reports). Locking 100k
        // rows first cost a WAL record per row.
        let askedSets = operations.map { Set($0.taskIDs) }
        let requested = askedSets.map { $0.sorted() }
        let lookedUp = zip(operations, requested).filter { lastBatch[$0.0.arrayID] != nil }
        var found: [Int64: [String: [Int64]]] = [:]  // array → status → ids, ascending
        if !lookedUp.isEmpty {
            let rows = try await connection.query(
                """
                SELECT array_id, status, array_agg(id) FROM task
                WHERE id = ANY(\(lookedUp.flatMap(\.1))) AND array_id = ANY(\(lookedUp.map(\.0.arrayID)))
                GROUP BY array_id, status
                """, logger: logger)
            // Sorted here: ORDER BY inside array_agg made PostgreSQL sort every row (on disk, for
            // 100 × 1,000 ids) instead of hashing the groups.
            for try await (arrayID, status, ids) in rows.decode((Int64, String, [Int64]).self) {
                found[arrayID, default: [:]][status] = ids.sorted()
            }
        }

        var results: [Result<Output, OperationError>] = []
        var plans: [Int: (statusByID: [String: [Int64]], movable: [Int64])] = [:]
        for (index, operation) in operations.enumerated() {
            guard lastBatch[operation.arrayID] != nil else {
                results.append(.failure(.arrayNotFound(operation.arrayID)))
                continue
            }
            // The rows hold every asked-for id found in any of the run's arrays: keep this
            // command's own (a command naming another command's task must not count it as found).
            let asked = askedSets[index]
            var statusByID: [String: [Int64]] = [:]
            var count = 0
            for (status, ids) in found[operation.arrayID] ?? [:] {
                let mine = ids.filter(asked.contains)
                guard !mine.isEmpty else { continue }
                statusByID[status] = mine
                count += mine.count
            }
            if count != asked.count {
                let present = Set(statusByID.values.joined())
                results.append(.failure(.tasksNotInArray(requested[index].filter { !present.contains($0) }, arrayID: operation.arrayID)))
                continue
            }
            let movable = ((statusByID[TaskStatus.registering.rawValue] ?? []) + (statusByID[TaskStatus.adjustingResources.rawValue] ?? [])).sorted()
            results.append(.success(Output(batches: [], tasksByStatus: statusByID, transitions: [])))
            if !movable.isEmpty { plans[index] = (statusByID, movable) }
        }
        guard !plans.isEmpty else { return results }

        // One statement queues the tasks, advances each array's batch counter by its number of
        // chunks, and inserts the task instances for exactly the tasks the UPDATE moved, numbered
        // per array in ascending task-id order.
        let writing = plans.keys.sorted()
        let arrays = writing.map { operations[$0].arrayID }
        let rows = try await connection.query(
            """
            WITH c AS (
                SELECT * FROM unnest(\(arrays)::bigint[], \(arrays.map { lastBatch[$0]! })::int[],
                                     \(writing.map { operations[$0].chunkSize })::int[],
                                     \(writing.map { operations[$0].workflowRunID })::bigint[],
                                     \(writing.map { operations[$0].taskResourcesID })::bigint[])
                    AS c(array_id, last_batch, chunk, workflow_run_id, task_resources_id)
            ), moved AS (
                UPDATE task
                SET status = 'Q', status_date = now(), num_attempts = num_attempts + 1
                WHERE id = ANY(\(writing.flatMap { plans[$0]!.movable })) AND status IN ('G', 'A')
                RETURNING array_id, id
            ), ranked AS (
                SELECT array_id, id, (row_number() OVER (PARTITION BY array_id ORDER BY id) - 1)::int AS rank FROM moved
            ), counter AS (
                UPDATE "array" AS a
                SET last_batch_num = c.last_batch + ((n.moved + c.chunk - 1) / c.chunk)::int
                FROM c JOIN (SELECT array_id, count(*) AS moved FROM moved GROUP BY array_id) AS n USING (array_id)
                WHERE a.id = c.array_id
            ), inserted AS (
                INSERT INTO task_instance
                    (workflow_run_id, array_id, task_id, task_resources_id, array_batch_num, array_step_id, status, status_date)
                SELECT c.workflow_run_id, c.array_id, r.id, c.task_resources_id,
                       c.last_batch + r.rank / c.chunk + 1, r.rank % c.chunk, 'Q', now()
                FROM ranked AS r JOIN c USING (array_id)
                RETURNING array_id, array_batch_num, array_step_id, id, task_id
            )
            SELECT array_id, array_batch_num, array_agg(array_step_id), array_agg(id), array_agg(task_id)
            FROM inserted GROUP BY array_id, array_batch_num
            """, logger: logger)
        // Every moved task got an instance, so the instances' tasks are the tasks moved. Unordered
        // aggregates, put in step order here: ORDER BY inside array_agg sorted every row in the
        // database (on disk, for 100 × 1,000 ids) instead of hashing the groups.
        var batches: [Int64: [Batch]] = [:]
        var moved: [Int64: [Int64]] = [:]
        for try await (arrayID, number, steps, instances, tasks) in rows.decode((Int64, Int32, [Int32], [Int64], [Int64]).self) {
            let bySteps = zip(steps, instances).sorted { $0.0 < $1.0 }.map(\.1)
            batches[arrayID, default: []].append(Batch(batchNumber: number, taskInstanceIDs: bySteps))
            moved[arrayID, default: []] += tasks
        }
        for index in writing {
            let operation = operations[index]
            results[index] = .success(
                operation.output(statusByID: plans[index]!.statusByID, moved: (moved[operation.arrayID] ?? []).sorted(),
                                 batches: (batches[operation.arrayID] ?? []).sorted { $0.batchNumber < $1.batchNumber }))
        }
        return results
    }

    /// The output once the write moved `moved` (usually every movable task; an outside writer may
    /// have changed a task since the status read) and opened `batches`.
    func output(statusByID before: [String: [Int64]], moved: [Int64], batches: [Batch]) -> Output {
        let movedSet = Set(moved)
        var after: [String: [Int64]] = [:]
        for (status, ids) in before {
            for id in ids where !movedSet.contains(id) { after[status, default: []].append(id) }
        }
        if !moved.isEmpty { after[TaskStatus.queued.rawValue, default: []] += moved }

        let registering = before[TaskStatus.registering.rawValue] ?? []
        let adjusting = before[TaskStatus.adjustingResources.rawValue] ?? []
        var transitions: [TransitionGroup] = [
            .tasks(.registering, .queued, arrayID: arrayID, ids: registering.filter(movedSet.contains)),
            .tasks(.adjustingResources, .queued, arrayID: arrayID, ids: adjusting.filter(movedSet.contains)),
        ]
        for batch in batches {
            transitions.append(
                .taskInstances(nil, .queued, arrayID: arrayID, batchNumber: batch.batchNumber, ids: batch.taskInstanceIDs.sorted()))
        }
        return Output(batches: batches, tasksByStatus: after.mapValues { $0.sorted() }, transitions: transitions.nonEmpty())
    }
}
