// ArrayFSMLoad — load-test tooling: topic dumps (kcat -J), replay, workload generation, seeding.
// Uses Kafka and PostgreSQL directly; never the service.
import Foundation
import Logging
import NIOCore
import PostgresNIO

/// Creates what a generated workload refers to — its arrays and their tasks in status G — with
/// COPY, as a client binding a workflow would (gen's add_array commands then find them).
public struct Seeder: Sendable {
    public var spec: LoadSpec

    public init(spec: LoadSpec) { self.spec = spec }

    /// The seeding would collide with rows already there.
    public struct AlreadySeeded: Error, CustomStringConvertible {
        public var description: String
    }

    /// Seeds in one transaction; returns (arrays, tasks) created. `progress` gets tasks written so far.
    @discardableResult
    public func seed(_ client: PostgresClient, logger: Logger, progress: @escaping (Int, Int) -> Void = { _, _ in }) async throws
        -> (arrays: Int, tasks: Int)
    {
        let plan = spec.plan()
        guard let first = plan.first, let last = plan.last else { return (0, 0) }
        let totalTasks = plan.reduce(0) { $0 + $1.taskIDs.count }
        return try await client.withConnection { connection in
            try await connection.query("BEGIN", logger: logger)
            do {
                for try await existing in try await connection.query(
                    """
                    SELECT (SELECT count(*) FROM "array" WHERE id BETWEEN \(first.arrayID) AND \(last.arrayID))
                         + (SELECT count(*) FROM task WHERE id BETWEEN \(first.taskIDs.lowerBound) AND \(last.taskIDs.upperBound))
                    """, logger: logger
                ).decode(Int64.self) where existing > 0 {
                    throw AlreadySeeded(description: "\(existing) arrays or tasks with this spec's ids exist already; seed an empty database or change first ids")
                }
                try await connection.copyFrom(
                    table: "array", columns: ["id", "name", "task_template_version_id", "workflow_id", "max_concurrently_running"],
                    logger: logger
                ) { writer in
                    var buffer = ByteBuffer()
                    for array in plan {
                        buffer.writeString("\(array.arrayID)\tarray-\(array.arrayID)\t\(array.taskTemplateVersionID)\t\(array.workflowID)\t10000\n")
                    }
                    try await writer.write(buffer)
                }
                try await connection.copyFrom(table: "task", columns: ["id", "workflow_id", "array_id", "name", "status"], logger: logger) { writer in
                    var buffer = ByteBuffer()
                    var written = 0
                    for array in plan {
                        for id in array.taskIDs {
                            buffer.writeString("\(id)\t\(array.workflowID)\t\(array.arrayID)\ttask-\(id)\tG\n")
                            written += 1
                            if buffer.readableBytes > 1 << 20 {
                                try await writer.write(buffer)
                                buffer.clear()
                                progress(written, totalTasks)
                            }
                        }
                    }
                    try await writer.write(buffer)
                    progress(written, totalTasks)
                }
                // Explicit ids do not advance the identity sequences; move them past the seeded rows.
                try await connection.query(
                    """
                    SELECT setval(pg_get_serial_sequence('"array"', 'id'), greatest((SELECT max(id) FROM "array"), 1)),
                           setval(pg_get_serial_sequence('task', 'id'), greatest((SELECT max(id) FROM task), 1))
                    """, logger: logger)
                try await connection.query("COMMIT", logger: logger)
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                throw error
            }
            try await connection.query("ANALYZE \"array\", task", logger: logger)
            return (plan.count, totalTasks)
        }
    }
}
