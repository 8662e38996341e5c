// ArrayFSMTools — developer tools the CLI runs: benchmarks, throwaway PostgreSQL, brokers, child
// processes, a serve on a local broker. Never linked into the service itself.
import ArrayFSM
import Logging
import PostgresNIO

/// An array with tasks, created directly in the database as an external client would bind them.
public struct ArrayFixture: Sendable {
    public var arrayID: Int64
    public var workflowID: Int64
    /// The tasks' ids, ascending.
    public var taskIDs: [Int64]

    /// Creates an array of `tasks` tasks in `status` (set-based: one INSERT … SELECT generate_series).
    public static func make(
        _ database: ArrayDatabase,
        tasks: Int,
        status: TaskStatus = .registering,
        workflowID: Int64 = Int64.random(in: 1...1_000_000_000),
        taskTemplateVersionID: Int64 = Int64.random(in: 1...1_000_000_000),
        maxConcurrentlyRunning: Int32 = .max,
        logger: Logger = ToolLogger.default
    ) async throws -> ArrayFixture {
        let array = try await database.perform(
            AddArray(workflowID: workflowID, taskTemplateVersionID: taskTemplateVersionID,
                     maxConcurrentlyRunning: maxConcurrentlyRunning, name: "fixture-\(workflowID)"),
            logger: logger)
        let rows = try await database.client.query(
            """
            WITH created AS (
                INSERT INTO task (workflow_id, array_id, name, status)
                SELECT \(workflowID), \(array.arrayID), 'task-' || n, \(status.rawValue)
                FROM generate_series(1, \(tasks)) AS n
                RETURNING id
            )
            SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM created
            """, logger: logger)
        var ids: [Int64] = []
        for try await created in rows.decode([Int64].self) { ids = created }
        return ArrayFixture(arrayID: array.arrayID, workflowID: workflowID, taskIDs: ids)
    }

    /// Queues every task in batches of `chunkSize` and returns the batch numbers.
    public func queueAll(
        _ database: ArrayDatabase, chunkSize: Int32 = 1000, logger: Logger = ToolLogger.default
    ) async throws -> RecordArrayBatchNum.Output {
        try await database.perform(
            RecordArrayBatchNum(arrayID: arrayID, taskIDs: taskIDs, taskResourcesID: 1, workflowRunID: 1, chunkSize: chunkSize),
            logger: logger)
    }
}
