import Logging
import PostgresNIO

extension DatabaseURL {
    /// Runs a ``PostgresClient`` for this URL while `body` uses it, then shuts it down. `parameters`:
    /// session settings of every connection (see ``configuration(maxConnections:parameters:)``).
    public func withClient<Result: Sendable>(
        maxConnections: Int = 8,
        parameters: [(String, String)] = [],
        logger: Logger,
        _ body: (PostgresClient) async throws -> Result
    ) async throws -> Result {
        let client = PostgresClient(configuration: try configuration(maxConnections: maxConnections, parameters: parameters), backgroundLogger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }
}
