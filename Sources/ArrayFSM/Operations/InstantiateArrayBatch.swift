// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
import Logging
import PostgresNIO

/// `instantiate_array_batch` (extension, Jobmon's `instantiate_task_instances` for one batch):
/// the batch's task instances Q → I and their tasks Q → I. A repeat moves nothing.
public struct InstantiateArrayBatch: BatchOperation {
    public var arrayID: Int64
    public var batchNumber: Int32

    public init(arrayID: Int64, batchNumber: Int32) {
        self.arrayID = arrayID
        self.batchNumber = batchNumber
    }

    public typealias Output = BatchTransitionOutput

    // One command keeps a statement of its own: the grouped one, given a group of one, launched a
    // 100,000-TI batch at 0.85× the direct SQL instead of 0.97–1.00× (docs/benchmarks.md).
    public func apply(on connection: PostgresConnection, logger: Logger) async throws -> Output {
        try await ArrayRowLock.acquire(arrayID, batch: batchNumber, on: connection, logger: logger)
        // Both UPDATEs see the statement's one snapshot: the task subquery finds the instances
        // still in Q. (A CTE of the queued instances referenced twice hid the row count from the
        // planner, which then scanned the whole task table: 5× slower.)
        return try await BatchTransition.run(
            """
            WITH tasks AS (
                UPDATE task SET status = 'I', status_date = now()
                WHERE status = 'Q' AND array_id = \(arrayID)
                  AND id IN (SELECT task_id FROM task_instance
                             WHERE array_id = \(arrayID) AND array_batch_num = \(batchNumber) AND status = 'Q')
                RETURNING id
            ), instances AS (
                UPDATE task_instance SET status = 'I', status_date = now()
                WHERE array_id = \(arrayID) AND array_batch_num = \(batchNumber) AND status = 'Q'
                RETURNING id
            )
            SELECT 'task', 'Q', array_agg(id) FROM tasks HAVING count(*) > 0
            UNION ALL
            SELECT 'task_instance', 'Q', array_agg(id) FROM instances HAVING count(*) > 0
            """,
            arrayID: arrayID, batchNumber: batchNumber, taskTo: .instantiating, taskInstanceTo: .instantiated,
            on: connection, logger: logger)
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
    public init(payload p: BatchPayload) {
        self.init(arrayID: p.array_id, batchNumber: p.batch_number)
    }

    public static func answer(_ output: Output) -> CommandAnswer { output.answer }
    public var groupingArrayID: Int64? { arrayID }
}
