import Logging
import PostgresNIO

// Set-based statements for many commands of one type at once, used when a batch of commands
// holds a run of them (the service applies a poll's commands in one transaction). Each does
// exactly what applying the commands one by one would do; the caller groups only commands on
// distinct arrays, so their order does not matter.

extension GetArrayMaxConcurrentlyRunning {
    /// Reads the limits of many arrays (looked up by id) in one statement; results in input order.
    public static func applyGrouped(
        _ operations: [GetArrayMaxConcurrentlyRunning], on connection: PostgresConnection, logger: Logger
    ) async throws -> [Result<Output, OperationError>] {
        let ids = operations.map { operation -> Int64 in
            guard case .arrayID(let id) = operation.lookup else { preconditionFailure("only lookups by id are grouped") }
            return id
        }
        var found: [Int64: Int32] = [:]
        let rows = try await connection.query(
            "SELECT id, max_concurrently_running FROM \"array\" WHERE id = ANY(\(ids))", logger: logger)
        for try await (id, limit) in rows.decode((Int64, Int32).self) { found[id] = limit }
        return ids.map { id in
            found[id].map { .success(Output(arrayID: id, maxConcurrentlyRunning: $0)) } ?? .failure(.arrayNotFound(id))
        }
    }

    /// Whether this lookup can be grouped (by id; lookups by workflow run one by one).
    public var isGroupable: Bool {
        if case .arrayID = lookup { return true }
        return false
    }
}

extension TransitionArrayToLaunched {
    /// Launches one batch of each of many arrays in one statement; results in input order.
    /// The arrays must be distinct.
    public static func applyGrouped(
        _ operations: [TransitionArrayToLaunched], on connection: PostgresConnection, logger: Logger
    ) async throws -> [Result<BatchTransitionOutput, OperationError>] {
        try await GroupedBatchTransition.apply(
            operations.map { ($0.arrayID, $0.batchNumber) }, from: (.instantiating, .instantiated), to: (.launched, .launched),
            on: connection, logger: logger
        ) { valid in
            """
            WITH c AS (
                SELECT * FROM unnest(\(valid.map { Int32($0) })::int[], \(valid.map { operations[$0].arrayID })::bigint[],
                                     \(valid.map { operations[$0].batchNumber })::int[],
                                     \(valid.map { operations[$0].nextReportIncrement })::float8[])
                    AS c(idx, array_id, batch, increment)
            ), tasks AS (
                UPDATE task SET status = 'O', status_date = now()
                FROM (SELECT c.idx, c.array_id, ti.task_id
                      FROM c JOIN task_instance ti
                           ON ti.array_id = c.array_id AND ti.array_batch_num = c.batch AND ti.status = 'I') AS b
                WHERE task.id = b.task_id AND task.array_id = b.array_id AND task.status = 'I'
                RETURNING b.idx, task.id
            ), instances AS (
                UPDATE task_instance AS ti
                SET status = 'O', status_date = now(), submitted_date = now(),
                    report_by_date = now() + make_interval(secs => c.increment)
                FROM c
                WHERE ti.array_id = c.array_id AND ti.array_batch_num = c.batch AND ti.status = 'I'
                RETURNING c.idx, ti.id
            )
            SELECT 'task', idx, array_agg(id) FROM tasks GROUP BY idx
            UNION ALL
            SELECT 'task_instance', idx, array_agg(id) FROM instances GROUP BY idx
            """
        }
    }
}

extension InstantiateArrayBatch {
    /// Instantiates one batch of each of many arrays in one statement; results in input order.
    /// The arrays must be distinct.
    public static func applyGrouped(
        _ operations: [InstantiateArrayBatch], on connection: PostgresConnection, logger: Logger
    ) async throws -> [Result<BatchTransitionOutput, OperationError>] {
        try await GroupedBatchTransition.apply(
            operations.map { ($0.arrayID, $0.batchNumber) }, from: (.queued, .queued), to: (.instantiating, .instantiated),
            on: connection, logger: logger
        ) { valid in
            """
            WITH c AS (
                SELECT * FROM unnest(\(valid.map { Int32($0) })::int[], \(valid.map { operations[$0].arrayID })::bigint[],
                                     \(valid.map { operations[$0].batchNumber })::int[])
                    AS c(idx, array_id, batch)
            ), tasks AS (
                UPDATE task SET status = 'I', status_date = now()
                FROM (SELECT c.idx, c.array_id, ti.task_id
                      FROM c JOIN task_instance ti
                           ON ti.array_id = c.array_id AND ti.array_batch_num = c.batch AND ti.status = 'Q') AS b
                WHERE task.id = b.task_id AND task.array_id = b.array_id AND task.status = 'Q'
                RETURNING b.idx, task.id
            ), instances AS (
                UPDATE task_instance AS ti SET status = 'I', status_date = now()
                FROM c
                WHERE ti.array_id = c.array_id AND ti.array_batch_num = c.batch AND ti.status = 'Q'
                RETURNING c.idx, ti.id
            )
            SELECT 'task', idx, array_agg(id) FROM tasks GROUP BY idx
            UNION ALL
            SELECT 'task_instance', idx, array_agg(id) FROM instances GROUP BY idx
            """
        }
    }
}

/// The part every grouped batch transition shares: lock the arrays, refuse unknown arrays and
/// batches never issued, run the one statement for the rest, and turn its rows — one per
/// (entity, command index): `'task' | 'task_instance', idx, array_agg(id)` — into outputs.
///
/// The statements join the batches' instances to their tasks without DISTINCT: a batch holds a
/// task once, and `UPDATE … FROM` updates (and returns) each row once even if it matched twice;
/// the DISTINCT cost a sort of every row (8% of the statement for 100 × 1,000 instances).
enum GroupedBatchTransition {
    static func apply(
        _ targets: [(arrayID: Int64, batchNumber: Int32)],
        from: (task: TaskStatus, instance: TaskInstanceStatus), to: (task: TaskStatus, instance: TaskInstanceStatus),
        on connection: PostgresConnection, logger: Logger,
        statement: (_ valid: [Int]) -> PostgresQuery
    ) async throws -> [Result<BatchTransitionOutput, OperationError>] {
        precondition(Set(targets.map(\.arrayID)).count == targets.count, "grouped commands must be on distinct arrays")
        let lastBatch = try await ArrayRowLock.acquire(targets.map(\.arrayID), on: connection, logger: logger)
        var results: [Result<BatchTransitionOutput, OperationError>] = []
        var valid: [Int] = []
        for (index, target) in targets.enumerated() {
            guard let last = lastBatch[target.arrayID] else {
                results.append(.failure(.arrayNotFound(target.arrayID)))
                continue
            }
            guard target.batchNumber <= last else {
                results.append(.failure(.batchNotFound(arrayID: target.arrayID, batchNumber: target.batchNumber, lastIssued: last)))
                continue
            }
            results.append(.success(BatchTransitionOutput(taskInstanceIDs: [], taskIDs: [], transitions: [])))
            valid.append(index)
        }
        guard !valid.isEmpty else { return results }

        var moved: [Int: (tasks: [Int64], instances: [Int64])] = [:]
        let rows = try await connection.query(statement(valid), logger: logger)
        for try await (entity, index, ids) in rows.decode((String, Int32, [Int64]).self) {
            // Sorted here rather than by ORDER BY inside array_agg, which would sort in the database
            // while holding the locks.
            if entity == TransitionGroup.Entity.task.rawValue {
                moved[Int(index), default: ([], [])].tasks = ids.sorted()
            } else {
                moved[Int(index), default: ([], [])].instances = ids.sorted()
            }
        }
        for index in valid {
            let target = targets[index]
            let (tasks, instances) = moved[index] ?? ([], [])
            results[index] = .success(
                BatchTransitionOutput(
                    taskInstanceIDs: instances, taskIDs: tasks,
                    transitions: [
                        .tasks(from.task, to.task, arrayID: target.arrayID, batchNumber: target.batchNumber, ids: tasks),
                        .taskInstances(from.instance, to.instance, arrayID: target.arrayID, batchNumber: target.batchNumber, ids: instances),
                    ].nonEmpty()))
        }
        return results
    }
}

extension LogArrayDistributorID {
    /// Records the distributor ids of many commands (on distinct arrays) in one `UPDATE … FROM unnest`;
    /// results in input order.
    public static func applyGrouped(
        _ operations: [LogArrayDistributorID], on connection: PostgresConnection, logger: Logger
    ) async throws -> [Result<Output, OperationError>] {
        precondition(Set(operations.map(\.arrayID)).count == operations.count, "grouped commands must be on distinct arrays")
        let present = try await ArrayRowLock.acquire(operations.map(\.arrayID), on: connection, logger: logger)

        // One row per task instance (command index, id, distributor id); one row per command for
        // the array and the templates, joined by index, so a template travels once per command.
        var commandIndexes: [Int32] = []
        var instanceIDs: [Int64] = []
        var distributorIDs: [String] = []
        var requested: [[Int64]] = []
        for (index, operation) in operations.enumerated() {
            let pairs = operation.distributorIDs.sorted { $0.key < $1.key }
            requested.append(pairs.map(\.key))
            guard present[operation.arrayID] != nil else { continue }
            for (id, distributorID) in pairs {
                commandIndexes.append(Int32(index))
                instanceIDs.append(id)
                distributorIDs.append(distributorID)
            }
        }
        // Counted, not listed: a command's ids are usually all its array's, and then the count says
        // everything; only commands that updated fewer rows than they named look for the rest.
        var updated: [Int: Int] = [:]
        if !instanceIDs.isEmpty {
            let rows = try await connection.query(
                """
                WITH c AS (
                    SELECT (n - 1)::int AS idx, array_id, has_stdout, stdout_t, has_stderr, stderr_t
                    FROM unnest(\(operations.map(\.arrayID))::bigint[],
                                \(operations.map { $0.stdout != nil })::bool[], \(operations.map { $0.stdout ?? "" })::text[],
                                \(operations.map { $0.stderr != nil })::bool[], \(operations.map { $0.stderr ?? "" })::text[])
                         WITH ORDINALITY AS c(array_id, has_stdout, stdout_t, has_stderr, stderr_t, n)
                ), d AS (
                    SELECT * FROM unnest(\(commandIndexes)::int[], \(instanceIDs)::bigint[], \(distributorIDs)::text[])
                        AS d(idx, id, distributor_id)
                ), updated AS (
                    UPDATE task_instance AS ti
                    SET distributor_id = d.distributor_id,
                        stdout = CASE WHEN c.has_stdout THEN replace(replace(c.stdout_t, '{distributor_id}', d.distributor_id),
                                                                     '{task_instance_id}', ti.id::text)
                                      ELSE ti.stdout END,
                        stderr = CASE WHEN c.has_stderr THEN replace(replace(c.stderr_t, '{distributor_id}', d.distributor_id),
                                                                     '{task_instance_id}', ti.id::text)
                                      ELSE ti.stderr END
                    FROM d JOIN c ON c.idx = d.idx
                    -- The ANY repeats c's arrays for the planner: without it, it joined c with a scan
                    -- of the whole table (100 × 1,000 ids among 400k rows: 0.35 s; with it 0.27 s).
                    WHERE ti.id = d.id AND ti.array_id = c.array_id AND ti.array_id = ANY(\(operations.map(\.arrayID)))
                    RETURNING d.idx
                )
                SELECT idx, count(*) FROM updated GROUP BY idx
                """, logger: logger)
            for try await (index, count) in rows.decode((Int32, Int64).self) { updated[Int(index)] = Int(count) }
        }

        // The ids not updated: not task instances of the command's array, checked right after the
        // update in the same transaction. Task instances are never deleted nor moved to another
        // array, and their ids are generated, so these are the ids the update skipped.
        var skipped: [Int: [Int64]] = [:]
        let short = operations.indices.filter { present[operations[$0].arrayID] != nil && updated[$0, default: 0] < requested[$0].count }
        if !short.isEmpty {
            let rows = try await connection.query(
                """
                SELECT d.idx, array_agg(d.id)
                FROM unnest(\(short.flatMap { index in requested[index].map { _ in Int32(index) } })::int[],
                            \(short.flatMap { index in requested[index].map { _ in operations[index].arrayID } })::bigint[],
                            \(short.flatMap { requested[$0] })::bigint[]) AS d(idx, array_id, id)
                WHERE NOT EXISTS (SELECT FROM task_instance AS ti WHERE ti.id = d.id AND ti.array_id = d.array_id)
                GROUP BY d.idx
                """, logger: logger)
            for try await (index, ids) in rows.decode((Int32, [Int64]).self) { skipped[Int(index)] = ids.sorted() }
        }
        return operations.enumerated().map { index, operation in
            guard present[operation.arrayID] != nil else { return .failure(.arrayNotFound(operation.arrayID)) }
            let missing = skipped[index] ?? []
            let missingSet = Set(missing)
            return .success(Output(taskInstanceIDs: requested[index].filter { !missingSet.contains($0) }, skippedIDs: missing))
        }
    }
}
