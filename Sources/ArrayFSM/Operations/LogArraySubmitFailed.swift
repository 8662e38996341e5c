// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
import Logging
import PostgresNIO

/// `log_array_submit_failed` (extension): the cluster refused the batch's array job, so its
/// task instances I → W (no_distributor_id). Tasks are left as they are, as in Jobmon.
public struct LogArraySubmitFailed: BatchStatementOperation {
    public var batch: ArrayBatch

    public init(batch: ArrayBatch) { self.batch = batch }

    public static let taskTo: TaskStatus? = nil
    public static let taskInstanceTo = TaskInstanceStatus.noDistributorID

    public static func statement(for batch: ArrayBatch) -> PostgresQuery {
        """
        WITH instances AS (
            UPDATE task_instance SET status = 'W', status_date = now()
            WHERE array_id = \(batch.arrayID) AND array_batch_num = \(batch.batchNumber) AND status = 'I'
            RETURNING id
        )
        SELECT 'task_instance', 'I', array_agg(id) FROM instances HAVING count(*) > 0
        """
    }
}
