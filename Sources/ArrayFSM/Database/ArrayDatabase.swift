// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
import Logging
import PostgresNIO

/// arrayfsm's PostgreSQL: runs operations, each in its own transaction, retried on lock conflicts.
///
/// The ``PostgresClient`` must be running (its `run()` in a task) while this is used.
public struct ArrayDatabase: Sendable {
    public let client: PostgresClient
    public var retryPolicy: RetryPolicy

    public init(client: PostgresClient, retryPolicy: RetryPolicy = RetryPolicy()) {
        self.client = client
        self.retryPolicy = retryPolicy
    }

    /// Validates `operation`, then applies it in one transaction.
    ///
    /// Throws ``OperationError`` when the input or the database state refuses it (nothing changed),
    /// or the database's error after the retries are used up.
    public func perform<Operation: ArrayOperation>(_ operation: Operation, logger: Logger) async throws -> Operation.Output {
        try operation.validate()
        return try await transaction(logger: logger) { connection in
            try await operation.apply(on: connection, logger: logger)
        }
    }

    /// Runs `body` in a transaction on one pooled connection: COMMIT when it returns, ROLLBACK
    /// when it throws. A deadlock or serialization failure runs the whole body again, per ``retryPolicy``.
    public func transaction<Result: Sendable>(
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        var attempt = 1
        while true {
            do {
                return try await client.withConnection(isolation: isolation) { connection in
                    try await Self.transaction(on: connection, logger: logger, body)
                }
            } catch where attempt < retryPolicy.maxAttempts && RetryPolicy.isRetryable(error) {
                let delay = retryPolicy.delay(beforeRetry: attempt)
                logger.debug("transaction lost a lock race; retrying", metadata: ["attempt": "\(attempt)", "delay": "\(delay)"])
                attempt += 1
                try await Task.sleep(for: delay)
            }
        }
    }

    /// BEGIN, `body`, COMMIT on an already leased connection; ROLLBACK and rethrow on error.
    public static func transaction<Result: Sendable>(
        on connection: PostgresConnection,
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        try await connection.query("BEGIN", logger: logger)
        let result: Result
        do {
            result = try await body(connection)
        } catch {
            // A failed ROLLBACK leaves nothing to undo that closing the connection would not.
            _ = try? await connection.query("ROLLBACK", logger: logger)
            throw error
        }
        try await connection.query("COMMIT", logger: logger)
        return result
    }
}
