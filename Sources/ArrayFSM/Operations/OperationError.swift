/// Why an operation was refused. Nothing was changed in the database when this is thrown.
///
/// `code` is stable and machine-readable (it becomes `error.code` in a rejected result event);
/// `message` says what was wrong and what to do about it.
public struct OperationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable, machine-readable reason.
    public enum Code: String, Sendable, Hashable, Codable {
        /// A field is missing, out of range, or of the wrong shape.
        case invalidArgument = "invalid_argument"
        /// The array (or the array looked up by workflow and task template version) does not exist.
        case arrayNotFound = "not_found"
        /// The batch number was never issued for this array.
        case batchNotFound = "batch_not_found"
        /// Some task ids do not exist or belong to another array.
        case tasksNotInArray = "tasks_not_in_array"
        /// The command's `reply_to` is outside the topics serve may publish replies to.
        case replyToNotAllowed = "reply_to_not_allowed"
        /// The `command_id` was applied before to a command of another type, key or payload.
        case commandIDReused = "command_id_reused"
        /// The database kept failing on the command with an error that is neither the command's
        /// fault nor an outage (the message carries the SQLSTATE and the server's text).
        case databaseError = "database_error"
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }

    static func invalid(_ message: String) -> OperationError {
        OperationError(.invalidArgument, message)
    }

    static func arrayNotFound(_ arrayID: Int64) -> OperationError {
        OperationError(.arrayNotFound, "array \(arrayID) does not exist; create it with add_array first")
    }

    static func batchNotFound(arrayID: Int64, batchNumber: Int32, lastIssued: Int32) -> OperationError {
        OperationError(
            .batchNotFound,
            "array \(arrayID) has no batch \(batchNumber) (batches issued: 1...\(lastIssued)); "
                + "use a batch_number returned by record_array_batch_num"
        )
    }

    static func tasksNotInArray(_ ids: [Int64], arrayID: Int64) -> OperationError {
        let shown = ids.prefix(20).map(String.init).joined(separator: ", ")
        let more = ids.count > 20 ? " and \(ids.count - 20) more" : ""
        return OperationError(
            .tasksNotInArray,
            "task ids [\(shown)]\(more) do not exist or do not belong to array \(arrayID); nothing was queued"
        )
    }
}

/// Input checks shared by the operations: they run before any SQL, so a refused command never
/// reaches the database.
enum Check {
    /// Largest number of ids one command may carry; bigger lists belong in several commands.
    static let maxIDsPerCommand = 1_000_000
    /// Longest `next_report_increment` accepted: one year, in seconds.
    static let maxReportIncrement: Double = 365 * 24 * 3600

    static func id(_ value: Int64, _ field: String) throws(OperationError) {
        guard value >= 1 else { throw .invalid("\(field) must be a positive id, got \(value)") }
    }

    static func ids(_ values: [Int64], _ field: String) throws(OperationError) {
        guard !values.isEmpty else { throw .invalid("\(field) must not be empty") }
        guard values.count <= maxIDsPerCommand else {
            throw .invalid("\(field) has \(values.count) ids; split it into commands of at most \(maxIDsPerCommand)")
        }
        if let bad = values.first(where: { $0 < 1 }) {
            throw .invalid("\(field) must hold positive ids, got \(bad)")
        }
    }

    /// A string PostgreSQL's `text` can store and within `maxBytes` UTF-8 bytes: a NUL, or a value
    /// past the column's limit, would fail the batch's statement instead of this one command.
    static func text(_ value: String, _ field: String, maxBytes: Int) throws(OperationError) {
        guard value.utf8.count <= maxBytes else {
            throw .invalid("\(field) is \(value.utf8.count) bytes; at most \(maxBytes) UTF-8 bytes are allowed")
        }
        guard !value.utf8.contains(0) else { throw .invalid("\(field) must not contain a NUL character (\\u0000)") }
    }

    static func batchNumber(_ value: Int32) throws(OperationError) {
        guard value >= 1 else { throw .invalid("batch_number must be 1 or more, got \(value)") }
    }
}
