// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
import Logging
import PostgresNIO

/// `transition_to_killed`: the batch's task instances in K (kill_self) → F (error_fatal), and
/// their tasks → F if they are in O or R (the killable states). Everything else is untouched;
/// a batch without K instances changes nothing.
public struct TransitionToKilled: BatchStatementOperation {
    public var batch: ArrayBatch

    public init(batch: ArrayBatch) { self.batch = batch }

    public static let taskTo: TaskStatus? = .errorFatal
    public static let taskInstanceTo = TaskInstanceStatus.errorFatal

    // `before` locks the tasks and keeps their old status, which RETURNING alone cannot see:
    // O→F and R→F are reported as separate transition groups. The task ids come as an array, one
    // probe of the task key each, as in instantiate_array_batch.
    public static func statement(for batch: ArrayBatch) -> PostgresQuery {
        """
        WITH tasks AS (
            UPDATE task SET status = 'F', status_date = now()
            FROM (SELECT id, status FROM task
                  WHERE id = ANY(ARRAY(SELECT task_id FROM task_instance
                                       WHERE array_id = \(batch.arrayID) AND array_batch_num = \(batch.batchNumber) AND status = 'K'))
                    AND status IN ('O', 'R')
                  ORDER BY id FOR UPDATE) AS before
            WHERE task.id = before.id
            RETURNING task.id, before.status AS from_status
        ), instances AS (
            UPDATE task_instance SET status = 'F', status_date = now()
            WHERE array_id = \(batch.arrayID) AND array_batch_num = \(batch.batchNumber) AND status = 'K'
            RETURNING id
        )
        SELECT 'task', from_status, array_agg(id) FROM tasks GROUP BY from_status
        UNION ALL
        SELECT 'task_instance', 'K', array_agg(id) FROM instances HAVING count(*) > 0
        """
    }
}
