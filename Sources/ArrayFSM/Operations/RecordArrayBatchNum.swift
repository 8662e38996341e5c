// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
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
    /// status read, task move, instance insert) instead of four per command; results in input order, each exactly what
    /// applying its command alone would give. One command's refusal does not affect the others:
    /// refusals are decided before the write. The arrays must be distinct: two commands on one
    /// array would both number their batches from the same counter. Call it inside a transaction
    /// (it locks the array rows and moves the tasks inside a savepoint).
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
        // The ids go as runs of consecutive ids (`IDRuns`), here and in the write: one index
        // range scan per run instead of one descent per id.
        let askedSets = operations.map { Set($0.taskIDs) }
        let requested = askedSets.map { $0.sorted() }
        let lookedUp = zip(operations, requested).filter { lastBatch[$0.0.arrayID] != nil }
        var found: [Int64: [String: [Int64]]] = [:]  // array → status → ids, ascending
        if !lookedUp.isEmpty {
            let runs = IDRuns(lookedUp.flatMap(\.1))
            let rows = try await connection.query(
                """
                SELECT t.array_id, t.status, array_agg(t.id)
                FROM unnest(\(runs.lows)::bigint[], \(runs.highs)::bigint[]) AS r(lo, hi)
                     JOIN task AS t ON t.id BETWEEN r.lo AND r.hi
                GROUP BY t.array_id, t.status
                """, logger: logger)
            // Rows in arrays outside the run come back too and are never looked at (an id in another
            // array is not found for its command); filtering them in SQL compared every row with
            // every array of the run. Sorted here: ORDER BY inside array_agg made PostgreSQL sort
            // every row (on disk, for 100 × 1,000 ids) instead of hashing the groups.
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

        // The tasks move first; the instances are numbered here, from the ids that moved, and
        // inserted by a second statement. Numbering in SQL (a window over the moved rows, then
        // grouping the inserted rows back by batch) sorted 100 × 1,000 rows twice, on disk.
        let writing = plans.keys.sorted()
        let movable = writing.flatMap { plans[$0]!.movable }
        // Counted by the command tag, not returned: usually every movable task moves, and the count
        // says so (returning 100,000 ids to count them cost 30–50 ms). When it falls short (an
        // outside writer changed a task since the status read, or a trigger vetoed a row), the
        // move is undone to the savepoint and done again, returning the ids that moved.
        let runs = IDRuns(movable)
        var moved: [Int: [Int64]] = [:]
        try await connection.query("SAVEPOINT record_move", logger: logger)
        let count = try await connection.affectedRows(
            """
            UPDATE task AS t
            SET status = 'Q', status_date = now(), num_attempts = t.num_attempts + 1
            FROM unnest(\(runs.lows)::bigint[], \(runs.highs)::bigint[]) AS r(lo, hi)
            WHERE t.id BETWEEN r.lo AND r.hi AND t.status IN ('G', 'A')
            """, logger: logger)
        if count == movable.count {
            for index in writing { moved[index] = plans[index]!.movable }
        } else {
            try await connection.query("ROLLBACK TO SAVEPOINT record_move", logger: logger)
            var movedSet = Set<Int64>()
            let rows = try await connection.query(
                """
                WITH moved AS (
                    UPDATE task AS t
                    SET status = 'Q', status_date = now(), num_attempts = t.num_attempts + 1
                    FROM unnest(\(runs.lows)::bigint[], \(runs.highs)::bigint[]) AS r(lo, hi)
                    WHERE t.id BETWEEN r.lo AND r.hi AND t.status IN ('G', 'A')
                    RETURNING t.id
                )
                SELECT coalesce(array_agg(id), '{}') FROM moved
                """, logger: logger)
            for try await ids in rows.decode([Int64].self) {
                movedSet = Set(ids)
            }
            for index in writing { moved[index] = plans[index]!.movable.filter(movedSet.contains) }
        }
        try await connection.query("RELEASE SAVEPOINT record_move", logger: logger)
        let numbering = InstanceNumbering(commands: writing.compactMap { index in
            guard let tasks = moved[index], !tasks.isEmpty else { return nil }
            return .init(operation: operations[index], lastBatch: lastBatch[operations[index].arrayID]!, moved: tasks)
        })
        let batches = try await numbering.insert(on: connection, logger: logger)
        for index in writing {
            let operation = operations[index]
            results[index] = .success(
                operation.output(statusByID: plans[index]!.statusByID, moved: moved[index] ?? [], batches: batches[operation.arrayID] ?? []))
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

/// The task instances a queueing creates, numbered as Jobmon numbers them: per array, the moved
/// tasks in ascending id order, in chunks of the command's chunk size, each chunk the array's next
/// batch number, step ids 0..<n within a chunk.
struct InstanceNumbering {
    struct Queued {
        var operation: RecordArrayBatchNum
        /// The array's last batch number before this command.
        var lastBatch: Int32
        /// The tasks the command moved to Q, ascending.
        var moved: [Int64]

        /// The batch of the task at `rank` among the moved ones.
        func batchNumber(ofRank rank: Int) -> Int32 { lastBatch + Int32(rank / Int(operation.chunkSize)) + 1 }

        /// The array's last batch number after this command (it moved at least one task).
        var newLastBatch: Int32 { batchNumber(ofRank: moved.count - 1) }
    }

    var commands: [Queued]

    /// Inserts the instances and advances each array's batch counter (one statement); returns each
    /// array's batches, ascending, instances in step order.
    func insert(on connection: PostgresConnection, logger: Logger) async throws -> [Int64: [RecordArrayBatchNum.Batch]] {
        guard !commands.isEmpty else { return [:] }
        // The rows go as runs of consecutive moved tasks, each with the rank of its first task in
        // its command, and are expanded by generate_series: a command's tasks are usually one run,
        // so 100 × 1,000 instances bind a few hundred numbers instead of four arrays of 100,000.
        var runArrays: [Int64] = []
        var runFirstTasks: [Int64] = []
        var runLengths: [Int32] = []
        var runFirstRanks: [Int32] = []
        var runLastBatches: [Int32] = []
        var runChunks: [Int32] = []
        var runWorkflowRuns: [Int64] = []
        var runTaskResources: [Int64] = []
        var instanceCount = 0
        for command in commands {
            var rank = 0
            let runs = IDRuns(command.moved)
            for (low, high) in zip(runs.lows, runs.highs) {
                runArrays.append(command.operation.arrayID)
                runFirstTasks.append(low)
                runLengths.append(Int32(high - low + 1))
                runFirstRanks.append(Int32(rank))
                runLastBatches.append(command.lastBatch)
                runChunks.append(command.operation.chunkSize)
                runWorkflowRuns.append(command.operation.workflowRunID)
                runTaskResources.append(command.operation.taskResourcesID)
                rank += Int(high - low + 1)
            }
            instanceCount += command.moved.count
        }
        let rows = try await connection.query(
            """
            WITH counter AS (
                UPDATE "array" AS a SET last_batch_num = c.last_batch
                FROM unnest(\(commands.map(\.operation.arrayID))::bigint[], \(commands.map(\.newLastBatch))::int[]) AS c(array_id, last_batch)
                WHERE a.id = c.array_id
            ), inserted AS (
                INSERT INTO task_instance
                    (workflow_run_id, array_id, task_id, task_resources_id, array_batch_num, array_step_id, status, status_date)
                SELECT r.workflow_run_id, r.array_id, r.first_task + s.k, r.task_resources_id,
                       r.last_batch + (r.first_rank + s.k) / r.chunk + 1, (r.first_rank + s.k) % r.chunk, 'Q', now()
                FROM unnest(\(runArrays)::bigint[], \(runFirstTasks)::bigint[], \(runLengths)::int[], \(runFirstRanks)::int[],
                            \(runLastBatches)::int[], \(runChunks)::int[], \(runWorkflowRuns)::bigint[], \(runTaskResources)::bigint[])
                         AS r(array_id, first_task, length, first_rank, last_batch, chunk, workflow_run_id, task_resources_id)
                     CROSS JOIN LATERAL generate_series(0, r.length - 1) AS s(k)
                RETURNING id, task_id
            )
            SELECT array_agg(id), array_agg(task_id) FROM inserted
            """, logger: logger)
        var instanceOf: [Int64: Int64] = [:]
        instanceOf.reserveCapacity(instanceCount)
        for try await (ids, tasks) in rows.decode(([Int64], [Int64]).self) {
            for (id, task) in zip(ids, tasks) { instanceOf[task] = id }
        }
        var batches: [Int64: [RecordArrayBatchNum.Batch]] = [:]
        for command in commands {
            let chunk = Int(command.operation.chunkSize)
            batches[command.operation.arrayID] = stride(from: 0, to: command.moved.count, by: chunk).map { start in
                RecordArrayBatchNum.Batch(
                    batchNumber: command.batchNumber(ofRank: start),
                    taskInstanceIDs: command.moved[start..<min(start + chunk, command.moved.count)].map { instanceOf[$0]! })
            }
        }
        return batches
    }
}

extension RecordArrayBatchNum: GroupableOperation {
    public init(payload p: RecordArrayBatchNumPayload) {
        self.init(arrayID: p.array_id, taskIDs: p.task_ids, taskResourcesID: p.task_resources_id, workflowRunID: p.workflow_run_id)
    }

    public static func answer(_ output: Output) -> CommandAnswer {
        CommandAnswer(.recordArrayBatchNum(batches: output.batches, tasksByStatus: output.tasksByStatus), transitions: output.transitions)
    }

    public var groupingArrayID: Int64? { arrayID }
    public var boundIDs: Int { taskIDs.count }
}

/// `record_array_batch_num`'s payload.
// swiftlint:disable identifier_name
public struct RecordArrayBatchNumPayload: Decodable {
    public var array_id: Int64
    public var task_ids: [Int64]
    public var task_resources_id: Int64
    public var workflow_run_id: Int64

    /// `task_ids` as ``PayloadReader`` read it, when it could (the message then holds `[]`).
    static let readAhead = CodingUserInfoKey(rawValue: "arrayfsm.taskIDs")!

    enum CodingKeys: String, CodingKey {
        case array_id, task_ids, task_resources_id, workflow_run_id
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        array_id = try c.decode(Int64.self, forKey: .array_id)
        if let ids = decoder.userInfo[Self.readAhead] as? [Int64], c.contains(.task_ids) {
            task_ids = ids
        } else {
            task_ids = try c.decode([Int64].self, forKey: .task_ids)
        }
        task_resources_id = try c.decode(Int64.self, forKey: .task_resources_id)
        workflow_run_id = try c.decode(Int64.self, forKey: .workflow_run_id)
    }
}
// swiftlint:enable identifier_name
