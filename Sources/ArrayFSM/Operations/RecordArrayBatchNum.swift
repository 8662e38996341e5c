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
        let lastBatch = try await ArrayRowLock.acquire(arrayID, on: connection, logger: logger)
        let requested = Array(Set(taskIDs)).sorted()

        // Learn the requested tasks' statuses, and that they are this array's. No row locks: a task
        // never changes array, our own writers of this array's tasks wait on the array row, and the
        // UPDATE below re-checks the status of each row it moves (so an outside writer racing us
        // only changes which tasks move, which the UPDATE reports). Locking 100k rows first cost
        // a WAL record per row.
        var statusByID: [String: [Int64]] = [:]
        var found = 0
        let locked = try await connection.query(
            """
            SELECT status, array_agg(id ORDER BY id) FROM task
            WHERE id = ANY(\(requested)) AND array_id = \(arrayID)
            GROUP BY status
            """, logger: logger)
        for try await (status, ids) in locked.decode((String, [Int64]).self) {
            statusByID[status] = ids
            found += ids.count
        }
        if found != requested.count {
            let present = Set(statusByID.values.joined())
            throw OperationError.tasksNotInArray(requested.filter { !present.contains($0) }, arrayID: arrayID)
        }

        let registering = statusByID[TaskStatus.registering.rawValue] ?? []
        let adjusting = statusByID[TaskStatus.adjustingResources.rawValue] ?? []
        let movable = (registering + adjusting).sorted()
        guard !movable.isEmpty else {
            return Output(batches: [], tasksByStatus: statusByID, transitions: [])
        }

        // One statement queues the tasks, advances the array's batch counter by the number of
        // chunks, and inserts the task instances for exactly the tasks the UPDATE moved.
        let batchRows = try await connection.query(
            """
            WITH moved AS (
                UPDATE task
                SET status = 'Q', status_date = now(), num_attempts = num_attempts + 1
                WHERE id = ANY(\(movable)) AND status IN ('G', 'A')
                RETURNING id
            ), ranked AS (
                SELECT id, (row_number() OVER (ORDER BY id) - 1)::int AS rank FROM moved
            ), counter AS (
                UPDATE "array"
                SET last_batch_num = \(lastBatch) + (SELECT ((count(*) + \(chunkSize) - 1) / \(chunkSize))::int FROM moved)
                WHERE id = \(arrayID)
            ), inserted AS (
                INSERT INTO task_instance
                    (workflow_run_id, array_id, task_id, task_resources_id, array_batch_num, array_step_id, status, status_date)
                SELECT \(workflowRunID), \(arrayID), id, \(taskResourcesID),
                       \(lastBatch) + rank / \(chunkSize) + 1, rank % \(chunkSize), 'Q', now()
                FROM ranked
                RETURNING id, array_batch_num, array_step_id
            )
            SELECT array_batch_num, array_agg(id ORDER BY array_step_id)
            FROM inserted GROUP BY array_batch_num
            UNION ALL
            SELECT 0, array_agg(id ORDER BY id) FROM moved
            ORDER BY 1
            """, logger: logger)
        var batches: [Batch] = []
        var moved: [Int64] = []
        for try await (number, ids) in batchRows.decode((Int32, [Int64]?).self) {
            if number == 0 {
                moved = ids ?? []
            } else {
                batches.append(Batch(batchNumber: number, taskInstanceIDs: ids ?? []))
            }
        }

        // Usually moved == movable; an outside writer may have changed a task since the SELECT.
        let movedSet = Set(moved)
        var after: [String: [Int64]] = [:]
        for (status, ids) in statusByID {
            for id in ids where !movedSet.contains(id) { after[status, default: []].append(id) }
        }
        if !moved.isEmpty { after[TaskStatus.queued.rawValue, default: []] += moved }
        statusByID = after.mapValues { $0.sorted() }

        var transitions: [TransitionGroup] = [
            .tasks(.registering, .queued, arrayID: arrayID, ids: registering.filter(movedSet.contains)),
            .tasks(.adjustingResources, .queued, arrayID: arrayID, ids: adjusting.filter(movedSet.contains)),
        ]
        for batch in batches {
            transitions.append(
                .taskInstances(nil, .queued, arrayID: arrayID, batchNumber: batch.batchNumber, ids: batch.taskInstanceIDs.sorted()))
        }
        return Output(batches: batches, tasksByStatus: statusByID, transitions: transitions.nonEmpty())
    }
}
