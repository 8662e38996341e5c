// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
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
    /// Launches one batch of each of many arrays, one statement per batch number and
    /// `next_report_increment` (a scheduler uses one); results in input order. The arrays must be distinct.
    public static func applyGrouped(
        _ operations: [TransitionArrayToLaunched], on connection: PostgresConnection, logger: Logger
    ) async throws -> [Result<BatchTransitionOutput, OperationError>] {
        try await GroupedBatchTransition.apply(
            operations.map { ($0.arrayID, $0.batchNumber) }, from: (.instantiating, .instantiated), to: (.launched, .launched),
            sharing: { operations[$0].nextReportIncrement }, on: connection, logger: logger
        ) { chunk in
            """
            WITH instances AS (
                UPDATE task_instance AS ti
                SET status = 'O', status_date = now(), submitted_date = now(),
                    report_by_date = now() + make_interval(secs => \(chunk.shared))
                WHERE ti.array_id = ANY(\(chunk.arrayIDs)) AND ti.array_batch_num = \(chunk.batchNumber) AND ti.status = 'I'
                RETURNING ti.array_id, ti.id, ti.task_id
            ), tasks AS (
                UPDATE task SET status = 'O', status_date = now()
                FROM instances AS i
                WHERE task.id = i.task_id AND task.array_id = i.array_id AND task.status = 'I'
                RETURNING task.array_id, task.id
            )
            SELECT 'task', array_id, array_agg(id) FROM tasks GROUP BY array_id
            UNION ALL
            SELECT 'task_instance', array_id, array_agg(id) FROM instances GROUP BY array_id
            """
        }
    }
}

extension InstantiateArrayBatch {
    /// Instantiates one batch of each of many arrays, one statement per batch number; results in
    /// input order. The arrays must be distinct.
    public static func applyGrouped(
        _ operations: [InstantiateArrayBatch], on connection: PostgresConnection, logger: Logger
    ) async throws -> [Result<BatchTransitionOutput, OperationError>] {
        try await GroupedBatchTransition.apply(
            operations.map { ($0.arrayID, $0.batchNumber) }, from: (.queued, .queued), to: (.instantiating, .instantiated),
            on: connection, logger: logger
        ) { chunk in
            """
            WITH instances AS (
                UPDATE task_instance AS ti SET status = 'I', status_date = now()
                WHERE ti.array_id = ANY(\(chunk.arrayIDs)) AND ti.array_batch_num = \(chunk.batchNumber) AND ti.status = 'Q'
                RETURNING ti.array_id, ti.id, ti.task_id
            ), tasks AS (
                UPDATE task SET status = 'I', status_date = now()
                FROM instances AS i
                WHERE task.id = i.task_id AND task.array_id = i.array_id AND task.status = 'Q'
                RETURNING task.array_id, task.id
            )
            SELECT 'task', array_id, array_agg(id) FROM tasks GROUP BY array_id
            UNION ALL
            SELECT 'task_instance', array_id, array_agg(id) FROM instances GROUP BY array_id
            """
        }
    }
}

/// The part every grouped batch transition shares: lock the arrays, refuse unknown arrays and
/// batches never issued, run one statement per batch number for the rest, and turn its rows — one
/// per (entity, array): `'task' | 'task_instance', array_id, array_agg(id)` — into outputs.
///
/// A statement finds its batches' instances by `array_id = ANY(…) AND array_batch_num = n`: one
/// probe of the (array, batch, step) index per command, whatever the statistics say; the tasks are
/// updated from the instances' `RETURNING`. An earlier form joined the instances to a table of the
/// commands: when the statistics had been taken with no instance in the source status (the usual
/// case — ANALYZE runs when nothing is in flight), the planner expected one row and compared every
/// instance with every command: 4.3 s instead of 0.75 s for 100 × 1,000 instances, quadratic in the
/// batch. (Matching (array, batch) pairs in one statement through `array_id = ANY(…)` alone read
/// every instance of the arrays: 10-TI launches on 1,000-TI arrays ran at a third of the speed.)
/// Commands in flight mostly share a batch number, so a poll is usually one or two statements.
enum GroupedBatchTransition {
    /// The targets one statement applies: one batch number, one `sharing` value.
    struct Chunk {
        var batchNumber: Int32
        var shared: Double
        /// Indexes into the targets.
        var targets: [Int] = []
        var arrayIDs: [Int64] = []
    }

    static func apply(
        _ targets: [(arrayID: Int64, batchNumber: Int32)],
        from: (task: TaskStatus, instance: TaskInstanceStatus), to: (task: TaskStatus, instance: TaskInstanceStatus),
        sharing shared: (Int) -> Double = { _ in 0 },
        on connection: PostgresConnection, logger: Logger,
        statement: (Chunk) -> PostgresQuery
    ) async throws -> [Result<BatchTransitionOutput, OperationError>] {
        precondition(Set(targets.map(\.arrayID)).count == targets.count, "grouped commands must be on distinct arrays")
        let lastBatch = try await ArrayRowLock.acquire(targets.map(\.arrayID), on: connection, logger: logger)
        var results: [Result<BatchTransitionOutput, OperationError>] = []
        var chunks: [Chunk] = []
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
            let value = shared(index)
            let slot: Int
            if let existing = chunks.firstIndex(where: { $0.batchNumber == target.batchNumber && $0.shared == value }) {
                slot = existing
            } else {
                chunks.append(Chunk(batchNumber: target.batchNumber, shared: value))
                slot = chunks.count - 1
            }
            chunks[slot].targets.append(index)
            chunks[slot].arrayIDs.append(target.arrayID)
        }

        var moved: [Int64: (tasks: [Int64], instances: [Int64])] = [:]
        for chunk in chunks {
            let rows = try await connection.query(statement(chunk), logger: logger)
            for try await (entity, arrayID, ids) in rows.decode((String, Int64, [Int64]).self) {
                // Sorted here rather than by ORDER BY inside array_agg, which would sort in the database
                // while holding the locks.
                if entity == TransitionGroup.Entity.task.rawValue {
                    moved[arrayID, default: ([], [])].tasks = ids.sorted()
                } else {
                    moved[arrayID, default: ([], [])].instances = ids.sorted()
                }
            }
        }
        for index in chunks.flatMap(\.targets) {
            let target = targets[index]
            let (tasks, instances) = moved[target.arrayID] ?? ([], [])
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
        // Counted, not listed: a command's ids are usually all its array's, and then the statement's
        // row count says everything (each row matches only its own command's array, so the count
        // falls short of the ids named exactly when some command names a stranger); only then are
        // the missing ids looked for.
        var updated = 0
        if !instanceIDs.isEmpty {
            let arrays = operations.map(\.arrayID)
            // Only a run with templates (an arrayfsm extension; Jobmon's distributors send none)
            // reads the instances' old stdout and stderr: carrying them and the templates through
            // the join made the rows it hashes wide enough to spill to disk (100 × 1,000 instances).
            // In both, the ANY repeats the commands' arrays for the planner: without it, it joined
            // them with a scan of the whole table (100 × 1,000 ids among 400k rows: 0.35 s; with it 0.27 s).
            let templated = operations.contains { $0.stdout != nil || $0.stderr != nil }
            updated = try await connection.affectedRows(
                !templated
                    ? """
                    UPDATE task_instance AS ti SET distributor_id = d.distributor_id
                    FROM unnest(\(commandIndexes)::int[], \(instanceIDs)::bigint[], \(distributorIDs)::text[]) AS d(idx, id, distributor_id)
                         JOIN unnest(\(arrays)::bigint[]) WITH ORDINALITY AS c(array_id, n) ON c.n = d.idx + 1
                    WHERE ti.id = d.id AND ti.array_id = c.array_id AND ti.array_id = ANY(\(arrays))
                    """
                    : """
                    WITH c AS (
                        SELECT (n - 1)::int AS idx, array_id, has_stdout, stdout_t, has_stderr, stderr_t
                        FROM unnest(\(arrays)::bigint[],
                                    \(operations.map { $0.stdout != nil })::bool[], \(operations.map { $0.stdout ?? "" })::text[],
                                    \(operations.map { $0.stderr != nil })::bool[], \(operations.map { $0.stderr ?? "" })::text[])
                             WITH ORDINALITY AS c(array_id, has_stdout, stdout_t, has_stderr, stderr_t, n)
                    ), d AS (
                        SELECT * FROM unnest(\(commandIndexes)::int[], \(instanceIDs)::bigint[], \(distributorIDs)::text[])
                            AS d(idx, id, distributor_id)
                    )
                    UPDATE task_instance AS ti
                    SET distributor_id = d.distributor_id,
                        stdout = CASE WHEN c.has_stdout THEN replace(replace(c.stdout_t, '{distributor_id}', d.distributor_id),
                                                                     '{task_instance_id}', d.id::text)
                                      ELSE ti.stdout END,
                        stderr = CASE WHEN c.has_stderr THEN replace(replace(c.stderr_t, '{distributor_id}', d.distributor_id),
                                                                     '{task_instance_id}', d.id::text)
                                      ELSE ti.stderr END
                    FROM d JOIN c ON c.idx = d.idx
                    WHERE ti.id = d.id AND ti.array_id = c.array_id AND ti.array_id = ANY(\(arrays))
                    """,
                logger: logger)
        }

        // The ids not updated: not task instances of the command's array, checked right after the
        // update in the same transaction. Task instances are never deleted nor moved to another
        // array, and their ids are generated, so these are the ids the update skipped.
        var skipped: [Int: [Int64]] = [:]
        if updated < instanceIDs.count {
            let named = operations.indices.filter { present[operations[$0].arrayID] != nil }
            let rows = try await connection.query(
                """
                SELECT d.idx, array_agg(d.id)
                FROM unnest(\(named.flatMap { index in requested[index].map { _ in Int32(index) } })::int[],
                            \(named.flatMap { index in requested[index].map { _ in operations[index].arrayID } })::bigint[],
                            \(named.flatMap { requested[$0] })::bigint[]) AS d(idx, array_id, id)
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
