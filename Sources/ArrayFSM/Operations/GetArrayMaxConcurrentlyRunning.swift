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

extension GetArrayMaxConcurrentlyRunning {
    /// Reads the limits of many arrays (looked up by id) in one statement; results in input order.
    public static func applyGrouped(
        _ operations: [GetArrayMaxConcurrentlyRunning], on connection: PostgresConnection, logger: Logger
    ) async throws -> [Result<Output, OperationError>] {
        let ids = operations.map { operation -> Int64 in
            guard case .arrayID(let id) = operation.lookup else { preconditionFailure("only lookups by id are grouped") }
            return id
        }
        var found: [Int64: Int32] = [:]
        let rows = try await connection.query(
            "SELECT id, max_concurrently_running FROM \"array\" WHERE id = ANY(\(ids))", logger: logger)
        for try await (id, limit) in rows.decode((Int64, Int32).self) { found[id] = limit }
        return ids.map { id in
            found[id].map { .success(Output(arrayID: id, maxConcurrentlyRunning: $0)) } ?? .failure(.arrayNotFound(id))
        }
    }
}

extension GetArrayMaxConcurrentlyRunning: GroupableOperation {
    public init(payload p: MaxConcurrencyPayload) throws(OperationError) {
        if let arrayID = p.array_id {
            self.init(.arrayID(arrayID))
            return
        }
        guard let workflowID = p.workflow_id, let ttvID = p.task_template_version_id else {
            throw .invalid("give array_id, or workflow_id and task_template_version_id")
        }
        self.init(.workflow(workflowID: workflowID, taskTemplateVersionID: ttvID))
    }

    public static func answer(_ output: Output) -> CommandAnswer { CommandAnswer(.maxConcurrentlyRunning(output)) }

    /// Lookups by id are grouped; by workflow go alone.
    public var groupingArrayID: Int64? {
        if case .arrayID(let id) = lookup { return id }
        return nil
    }
}

/// `get_array_max_concurrently_running`'s payload.
// swiftlint:disable identifier_name
public struct MaxConcurrencyPayload: Decodable {
    public var array_id: Int64?
    public var workflow_id: Int64?
    public var task_template_version_id: Int64?
}
// swiftlint:enable identifier_name
