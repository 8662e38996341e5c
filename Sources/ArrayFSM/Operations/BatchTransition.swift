// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
import Logging
import PostgresNIO

/// What a batch-wide transition moved: the task instances and tasks of one batch.
public struct BatchTransitionOutput: Sendable, Hashable {
    /// Task instances moved, ascending.
    public var taskInstanceIDs: [Int64]
    /// Tasks moved, ascending.
    public var taskIDs: [Int64]
    /// One group per (entity, from, to).
    public var transitions: [TransitionGroup]
}

/// Runs a batch transition statement and reads its result rows.
///
/// Every batch transition's SQL ends in the same shape, one row per (entity, from status):
/// `SELECT 'task' | 'task_instance', from_status, array_agg(id) … GROUP BY from_status`,
/// so the statement does all its work in one round trip and this type turns the rows into an output.
enum BatchTransition {
    static func run(
        _ statement: PostgresQuery,
        arrayID: Int64,
        batchNumber: Int32,
        taskTo: TaskStatus?,
        taskInstanceTo: TaskInstanceStatus,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> BatchTransitionOutput {
        var output = BatchTransitionOutput(taskInstanceIDs: [], taskIDs: [], transitions: [])
        let rows = try await connection.query(statement, logger: logger)
        for try await (entity, from, unordered) in rows.decode((String, String, [Int64]).self) {
            // Sorted here rather than by ORDER BY inside array_agg, which would sort in the
            // database while holding the locks; the ids mostly arrive in order already.
            let ids = unordered.sorted()
            switch entity {
            case TransitionGroup.Entity.task.rawValue:
                guard let taskTo else { continue }
                output.taskIDs += ids
                output.transitions.append(
                    TransitionGroup(entity: .task, from: from, to: taskTo.rawValue, arrayID: arrayID, batchNumber: batchNumber, ids: ids))
            default:
                output.taskInstanceIDs += ids
                output.transitions.append(
                    TransitionGroup(
                        entity: .taskInstance, from: from, to: taskInstanceTo.rawValue, arrayID: arrayID,
                        batchNumber: batchNumber, ids: ids))
            }
        }
        output.taskIDs.sort()
        output.taskInstanceIDs.sort()
        output.transitions = output.transitions.nonEmpty()
        return output
    }
}

/// The payload of the commands that name one batch of one array.
// swiftlint:disable identifier_name
public struct BatchPayload: Decodable {
    public var array_id: Int64
    public var batch_number: Int32
}
// swiftlint:enable identifier_name
