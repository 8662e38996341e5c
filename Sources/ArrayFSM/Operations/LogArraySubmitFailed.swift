// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
import Logging
import PostgresNIO

/// `log_array_submit_failed` (extension): the cluster refused the batch's array job, so its
/// task instances I → W (no_distributor_id). Tasks are left as they are, as in Jobmon.
public struct LogArraySubmitFailed: BatchOperation {
    public var arrayID: Int64
    public var batchNumber: Int32

    public init(arrayID: Int64, batchNumber: Int32) {
        self.arrayID = arrayID
        self.batchNumber = batchNumber
    }

    public typealias Output = BatchTransitionOutput

    public func apply(on connection: PostgresConnection, logger: Logger) async throws -> Output {
        try await ArrayRowLock.acquire(arrayID, batch: batchNumber, on: connection, logger: logger)
        return try await BatchTransition.run(
            """
            WITH instances AS (
                UPDATE task_instance SET status = 'W', status_date = now()
                WHERE array_id = \(arrayID) AND array_batch_num = \(batchNumber) AND status = 'I'
                RETURNING id
            )
            SELECT 'task_instance', 'I', array_agg(id) FROM instances HAVING count(*) > 0
            """,
            arrayID: arrayID, batchNumber: batchNumber, taskTo: nil, taskInstanceTo: .noDistributorID,
            on: connection, logger: logger)
    }
}

extension LogArraySubmitFailed: CommandOperation {
    public init(payload p: BatchPayload) {
        self.init(arrayID: p.array_id, batchNumber: p.batch_number)
    }

    public static func answer(_ output: Output) -> CommandAnswer { output.answer }
}
