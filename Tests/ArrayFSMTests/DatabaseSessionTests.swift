@testable import ArrayFSM
import ArrayFSMTesting
import ArrayFSMTools
import PostgresNIO
import Testing

@Suite struct DatabaseSessionTests {
    @Test func batchParametersAreTheSessionsSettingsFromItsFirstStatement() async throws {
        let (url, _) = try await TestPostgres.server()
        let parameters = DatabaseURL.batchParameters(workMem: "48MB") + [("application_name", "arrayfsm test")]
        try await url.withClient(maxConnections: 1, parameters: parameters, logger: TestPostgres.logger) { client in
            let rows = try await client.query(
                "SELECT current_setting('work_mem'), current_setting('application_name'), current_setting('jit')", logger: TestPostgres.logger)
            for try await (workMem, name, jit) in rows.decode((String, String, String).self) {
                #expect(workMem == "48MB")
                #expect(jit == "off")
                #expect(name == "arrayfsm test")
            }
        }
        // Without parameters a session keeps the server's default.
        try await url.withClient(maxConnections: 1, logger: TestPostgres.logger) { client in
            let rows = try await client.query("SELECT current_setting('work_mem')", logger: TestPostgres.logger)
            for try await workMem in rows.decode(String.self) { #expect(workMem == "4MB") }
        }
    }

    @Test func affectedRowsCountsTheRowsAStatementChanged() async throws {
        let (url, _) = try await TestPostgres.server()
        try await url.withClient(maxConnections: 1, logger: TestPostgres.logger) { client in
            try await client.withConnection { connection in
                let logger = TestPostgres.logger
                try await connection.query("CREATE TEMPORARY TABLE counted (id int PRIMARY KEY, v text)", logger: logger)
                #expect(try await connection.affectedRows("INSERT INTO counted SELECT g, '' FROM generate_series(1, 5) AS g", logger: logger) == 5)
                #expect(try await connection.affectedRows("UPDATE counted SET v = 'x' WHERE id = ANY(\([Int32(2), 4, 9]))", logger: logger) == 2)
                #expect(try await connection.affectedRows(
                    "WITH d AS (SELECT * FROM unnest(\([Int32(1), 3, 5])::int[]) AS d(id)) UPDATE counted SET v = 'y' FROM d WHERE counted.id = d.id",
                    logger: logger) == 3)
                #expect(try await connection.affectedRows("DELETE FROM counted WHERE id > 100", logger: logger) == 0)
            }
        }
    }
}
