// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
import Logging
import PostgresNIO

/// `add_array`: finds the array of a (workflow, task template version), creating it if missing;
/// an existing array gets the new `max_concurrently_running` (its name is kept), as in Jobmon.
public struct AddArray: ArrayOperation {
    public var workflowID: Int64
    public var taskTemplateVersionID: Int64
    public var maxConcurrentlyRunning: Int32
    public var name: String

    /// The longest array name accepted (Jobmon's column is 255 characters).
    public static let maxNameLength = 255
    /// The most bytes an array name may take (255 four-byte characters): one character can carry
    /// any number of combining marks.
    public static let maxNameBytes = 4 * maxNameLength

    public init(workflowID: Int64, taskTemplateVersionID: Int64, maxConcurrentlyRunning: Int32 = .max, name: String) {
        self.workflowID = workflowID
        self.taskTemplateVersionID = taskTemplateVersionID
        self.maxConcurrentlyRunning = maxConcurrentlyRunning
        self.name = name
    }

    public struct Output: Sendable, Hashable {
        public var arrayID: Int64
        /// Whether this call inserted the array (false: it existed and was updated).
        public var created: Bool
    }

    public func validate() throws(OperationError) {
        try Check.id(workflowID, "workflow_id")
        try Check.id(taskTemplateVersionID, "task_template_version_id")
        guard maxConcurrentlyRunning >= 0 else {
            throw .invalid("max_concurrently_running must be 0 or more, got \(maxConcurrentlyRunning)")
        }
        try Check.text(name, "name", maxBytes: Self.maxNameBytes)
        guard name.count <= Self.maxNameLength else {
            throw .invalid("name is \(name.count) characters; at most \(Self.maxNameLength) are allowed")
        }
    }

    public func apply(on connection: PostgresConnection, logger: Logger) async throws -> Output {
        // One statement, race-free: two first-time callers meet in ON CONFLICT and get the same id.
        // `xmax = 0` holds only for a row this statement inserted (an ON CONFLICT update sets xmax).
        let rows = try await connection.query(
            """
            INSERT INTO "array" (workflow_id, task_template_version_id, max_concurrently_running, name)
            VALUES (\(workflowID), \(taskTemplateVersionID), \(maxConcurrentlyRunning), \(name))
            ON CONFLICT (task_template_version_id, workflow_id)
            DO UPDATE SET max_concurrently_running = EXCLUDED.max_concurrently_running
            RETURNING id, (xmax = 0) AS created
            """, logger: logger)
        for try await (id, created) in rows.decode((Int64, Bool).self) {
            return Output(arrayID: id, created: created)
        }
        preconditionFailure("INSERT … RETURNING returned no row")
    }
}

extension AddArray: CommandOperation {
    public init(payload p: AddArrayPayload) {
        self.init(workflowID: p.workflow_id, taskTemplateVersionID: p.task_template_version_id,
                  maxConcurrentlyRunning: p.max_concurrently_running ?? .max, name: p.name ?? "")
    }

    public static func answer(_ output: Output) -> CommandAnswer { CommandAnswer(.addArray(output)) }
}

/// `add_array`'s payload.
// swiftlint:disable identifier_name
public struct AddArrayPayload: Decodable {
    public var workflow_id: Int64
    public var task_template_version_id: Int64
    public var max_concurrently_running: Int32?
    public var name: String?
}
// swiftlint:enable identifier_name
