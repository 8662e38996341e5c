// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
import Logging
import PostgresNIO

/// The part every grouped batch transition shares: lock the arrays, refuse unknown arrays and
/// batches never issued, run one statement per batch number for the rest, and turn its rows — one
/// per (entity, array): `'task' | 'task_instance', array_id, array_agg(id)` — into outputs.
///
/// A statement finds its batches' instances by `array_id = ANY(…) AND array_batch_num = n`: one
/// probe of the (array, batch, step) index per command, whatever the statistics say; the tasks are
/// updated from the instances' `RETURNING`. Never join the instances to a table of the commands:
/// with statistics taken while no instance was in the source status (the usual case: ANALYZE runs
/// when nothing is in flight) the planner expects one row and compares every instance with every
/// command, quadratic in the batch. Nor match (array, batch) pairs through `array_id = ANY(…)`
/// alone: that reads every instance of the arrays. Commands in flight mostly share a batch
/// number, so a poll is usually one or two statements. (Measurements: docs/benchmarks.md.)
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
