// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
import Logging
import PostgresNIO

/// `get_array_max_concurrently_running`: reads an array's concurrency limit, by id or by
/// (workflow, task template version). A missing array is a `not_found` error.
public struct GetArrayMaxConcurrentlyRunning: ArrayOperation {
    /// How the array is named.
    public enum Lookup: Sendable, Hashable {
        case arrayID(Int64)
        case workflow(workflowID: Int64, taskTemplateVersionID: Int64)
    }

    public var lookup: Lookup

    public init(_ lookup: Lookup) {
        self.lookup = lookup
    }

    public struct Output: Sendable, Hashable {
        public var arrayID: Int64
        public var maxConcurrentlyRunning: Int32
    }

    public func validate() throws(OperationError) {
        switch lookup {
        case .arrayID(let id):
            try Check.id(id, "array_id")
        case .workflow(let workflowID, let ttvID):
            try Check.id(workflowID, "workflow_id")
            try Check.id(ttvID, "task_template_version_id")
        }
    }

    public func apply(on connection: PostgresConnection, logger: Logger) async throws -> Output {
        let query: PostgresQuery
        switch lookup {
        case .arrayID(let id):
            query = """
                SELECT id, max_concurrently_running FROM "array" WHERE id = \(id)
                """
        case .workflow(let workflowID, let ttvID):
            query = """
                SELECT id, max_concurrently_running FROM "array"
                WHERE workflow_id = \(workflowID) AND task_template_version_id = \(ttvID)
                """
        }
        for try await (id, limit) in try await connection.query(query, logger: logger).decode((Int64, Int32).self) {
            return Output(arrayID: id, maxConcurrentlyRunning: limit)
        }
        switch lookup {
        case .arrayID(let id):
            throw OperationError.arrayNotFound(id)
        case .workflow(let workflowID, let ttvID):
            throw OperationError(
                .arrayNotFound,
                "no array for workflow \(workflowID) and task template version \(ttvID); create it with add_array first")
        }
    }
}
