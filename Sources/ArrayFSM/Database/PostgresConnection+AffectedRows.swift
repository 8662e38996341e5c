// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
import Logging
import PostgresNIO

extension PostgresConnection {
    /// Runs a statement that returns no rows and gives the number of rows it changed, from its
    /// command tag (`UPDATE 1000`). Counting this way costs the statement nothing; `RETURNING`
    /// and counting the returned rows materializes every changed row once more.
    func affectedRows(_ query: PostgresQuery, logger: Logger) async throws -> Int {
        let result: PostgresQueryResult = try await self.query(query, logger: logger).get()
        return result.metadata.rows ?? 0
    }
}
