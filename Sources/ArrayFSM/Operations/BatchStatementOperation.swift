// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
import Logging
import PostgresNIO

/// A command named by its batch alone whose whole effect is one statement over that batch's rows.
///
/// Applying it locks the array row and checks the batch was issued (as every operation starts),
/// then runs ``statement(for:)``, whose rows are in ``BatchTransition``'s shape. A conforming type
/// declares only its statement and the statuses it moves rows to.
public protocol BatchStatementOperation: BatchOperation, CommandOperation
where Output == BatchTransitionOutput, Payload == BatchPayload {
    init(batch: ArrayBatch)

    /// The set-based statement: one row per (entity, from status) with the ids it moved.
    static func statement(for batch: ArrayBatch) -> PostgresQuery
    /// Where the moved tasks go; nil for an operation that leaves tasks as they are.
    static var taskTo: TaskStatus? { get }
    /// Where the moved task instances go.
    static var taskInstanceTo: TaskInstanceStatus { get }
}

extension BatchStatementOperation {
    public init(arrayID: Int64, batchNumber: Int32) {
        self.init(batch: ArrayBatch(arrayID: arrayID, batchNumber: batchNumber))
    }

    public init(payload p: BatchPayload) {
        self.init(arrayID: p.array_id, batchNumber: p.batch_number)
    }

    public static func answer(_ output: BatchTransitionOutput) -> CommandAnswer { output.answer }

    public func apply(on connection: PostgresConnection, logger: Logger) async throws -> BatchTransitionOutput {
        try await ArrayRowLock.acquire(arrayID, batch: batchNumber, on: connection, logger: logger)
        return try await BatchTransition.run(
            Self.statement(for: batch), arrayID: arrayID, batchNumber: batchNumber,
            taskTo: Self.taskTo, taskInstanceTo: Self.taskInstanceTo, on: connection, logger: logger)
    }
}
