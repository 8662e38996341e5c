// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
import Logging
import PostgresNIO

/// `instantiate_array_batch` (extension, Jobmon's `instantiate_task_instances` for one batch):
/// the batch's task instances Q → I and their tasks Q → I. A repeat moves nothing.
public struct InstantiateArrayBatch: BatchStatementOperation {
    public var batch: ArrayBatch

    public init(batch: ArrayBatch) { self.batch = batch }

    public static let taskTo: TaskStatus? = .instantiating
    public static let taskInstanceTo = TaskInstanceStatus.instantiated

    // One command keeps a statement of its own: the grouped one, given a group of one, launched a
    // 100,000-TI batch at 0.85× the direct SQL instead of 0.97–1.00× (docs/benchmarks.md).
    //
    // Both UPDATEs see the statement's one snapshot: the task subquery finds the instances
    // still in Q. The batch's task ids come as an array, so each is one probe of the task key
    // whatever the statistics say of the array's other tasks: as a join, an array with many
    // analyzed tasks in Q had all of them scanned for every batch. (A CTE of the queued
    // instances referenced twice hid the row count from the planner, which then scanned the
    // whole task table.)
    public static func statement(for batch: ArrayBatch) -> PostgresQuery {
        """
        WITH tasks AS (
            UPDATE task SET status = 'I', status_date = now()
            WHERE id = ANY(ARRAY(SELECT task_id FROM task_instance
                                 WHERE array_id = \(batch.arrayID) AND array_batch_num = \(batch.batchNumber) AND status = 'Q'))
              AND status = 'Q' AND array_id = \(batch.arrayID)
            RETURNING id
        ), instances AS (
            UPDATE task_instance SET status = 'I', status_date = now()
            WHERE array_id = \(batch.arrayID) AND array_batch_num = \(batch.batchNumber) AND status = 'Q'
            RETURNING id
        )
        SELECT 'task', 'Q', array_agg(id) FROM tasks HAVING count(*) > 0
        UNION ALL
        SELECT 'task_instance', 'Q', array_agg(id) FROM instances HAVING count(*) > 0
        """
    }

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

extension InstantiateArrayBatch: GroupableOperation {
    public var groupingArrayID: Int64? { arrayID }
}
