import ArrayFSM
import ArrayFSMTesting
import PostgresNIO
import Testing

@Suite struct DatabaseSessionTests {
    @Test func batchParametersAreTheSessionsSettingsFromItsFirstStatement() async throws {
        let (url, _) = try await TestPostgres.server()
        let parameters = DatabaseURL.batchParameters(workMem: "48MB") + [("application_name", "arrayfsm test")]
        try await url.withClient(maxConnections: 1, parameters: parameters, logger: TestPostgres.logger) { client in
            let rows = try await client.query(
                "SELECT current_setting('work_mem'), current_setting('application_name')", logger: TestPostgres.logger)
            for try await (workMem, name) in rows.decode((String, String).self) {
                #expect(workMem == "48MB")
                #expect(name == "arrayfsm test")
            }
        }
        // Without parameters a session keeps the server's default.
        try await url.withClient(maxConnections: 1, logger: TestPostgres.logger) { client in
            let rows = try await client.query("SELECT current_setting('work_mem')", logger: TestPostgres.logger)
            for try await workMem in rows.decode(String.self) { #expect(workMem == "4MB") }
        }
    }
}
