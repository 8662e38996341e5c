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
    public var batch: ArrayBatch
    /// Seconds until the launched instance must report (Jobmon's distributor uses 3.1 × 90 s).
    public var nextReportIncrement: Double

    public init(arrayID: Int64, batchNumber: Int32, nextReportIncrement: Double) {
        self.batch = ArrayBatch(arrayID: arrayID, batchNumber: batchNumber)
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

    // One command keeps a statement of its own: the grouped one, given a group of one, launched a
    // 100,000-TI batch at 0.85× the direct SQL instead of 0.97–1.00× (docs/benchmarks.md). The
    // batch's task ids come as an array, one probe of the task key each, as in
    // instantiate_array_batch.
    public func apply(on connection: PostgresConnection, logger: Logger) async throws -> Output {
        try await ArrayRowLock.acquire(arrayID, batch: batchNumber, on: connection, logger: logger)
        return try await BatchTransition.run(
            """
            WITH tasks AS (
                UPDATE task SET status = 'O', status_date = now()
                WHERE id = ANY(ARRAY(SELECT task_id FROM task_instance
                                     WHERE array_id = \(arrayID) AND array_batch_num = \(batchNumber) AND status = 'I'))
                  AND status = 'I' AND array_id = \(arrayID)
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

extension TransitionArrayToLaunched: GroupableOperation {
    public init(payload p: LaunchPayload) {
        self.init(arrayID: p.array_id, batchNumber: p.batch_number, nextReportIncrement: p.next_report_increment)
    }

    public static func answer(_ output: Output) -> CommandAnswer { output.answer }
    public var groupingArrayID: Int64? { arrayID }
}

/// `transition_array_to_launched`'s payload.
// swiftlint:disable identifier_name
public struct LaunchPayload: Decodable {
    public var array_id: Int64
    public var batch_number: Int32
    public var next_report_increment: Double
}
// swiftlint:enable identifier_name
