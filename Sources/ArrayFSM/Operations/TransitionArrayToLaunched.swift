// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
import Logging
import PostgresNIO

/// `transition_array_to_launched`: the batch's tasks I → O and its task instances I → O, with
/// `submitted_date = status_date = now()` and `report_by_date = now() + next_report_increment`.
///
/// All timestamps come from the one transaction clock, so `report_by_date − status_date` is exactly
/// the increment and a task's `status_date` equals its instance's. A repeat moves nothing.
public struct TransitionArrayToLaunched: BatchOperation {
    public var arrayID: Int64
    public var batchNumber: Int32
    /// Seconds until the launched instance must report (Jobmon's distributor uses 3.1 × 90 s).
    public var nextReportIncrement: Double

    public init(arrayID: Int64, batchNumber: Int32, nextReportIncrement: Double) {
        self.arrayID = arrayID
        self.batchNumber = batchNumber
        self.nextReportIncrement = nextReportIncrement
    }

    public typealias Output = BatchTransitionOutput

    public func validate() throws(OperationError) {
        try Check.id(arrayID, "array_id")
        try Check.batchNumber(batchNumber)
        guard nextReportIncrement.isFinite, (0...Check.maxReportIncrement).contains(nextReportIncrement) else {
            throw .invalid(
                "next_report_increment must be a finite number of seconds in 0...\(Int(Check.maxReportIncrement)), got \(nextReportIncrement)")
        }
    }

    public func apply(on connection: PostgresConnection, logger: Logger) async throws -> Output {
        try await ArrayRowLock.acquire(arrayID, batch: batchNumber, on: connection, logger: logger)
        return try await BatchTransition.run(
            """
            WITH tasks AS (
                UPDATE task SET status = 'O', status_date = now()
                WHERE status = 'I' AND array_id = \(arrayID)
                  AND id IN (SELECT task_id FROM task_instance
                             WHERE array_id = \(arrayID) AND array_batch_num = \(batchNumber) AND status = 'I')
                RETURNING id
            ), instances AS (
                UPDATE task_instance
                SET status = 'O', status_date = now(), submitted_date = now(),
                    report_by_date = now() + make_interval(secs => \(nextReportIncrement))
                WHERE array_id = \(arrayID) AND array_batch_num = \(batchNumber) AND status = 'I'
                RETURNING id
            )
            SELECT 'task', 'I', array_agg(id) FROM tasks HAVING count(*) > 0
            UNION ALL
            SELECT 'task_instance', 'I', array_agg(id) FROM instances HAVING count(*) > 0
            """,
            arrayID: arrayID, batchNumber: batchNumber, taskTo: .launched, taskInstanceTo: .launched,
            on: connection, logger: logger)
    }
}
