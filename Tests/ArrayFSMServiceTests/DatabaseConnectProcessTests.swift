import ArrayFSM
import ArrayFSMService
import ArrayFSMTesting
import ArrayFSMTools
import Foundation
import Testing

/// The `arrayfsm` binary reaching PostgreSQL: over verified TLS, and refusing — in one line, within
/// seconds, never with the password — what it cannot reach.
@Suite(.serialized) struct DatabaseConnectProcessTests {
    let logger = TestPostgres.logger
    static let binary = ServeProcessTests.binary

    /// Runs `arrayfsm arguments…` to its end (at most 60 s); its exit code, output and duration.
    func run(_ arguments: [String], environment: [String: String]) async throws -> (code: Int32?, output: String, took: Duration) {
        let started = ContinuousClock.now
        let child = try ChildProcess([Self.binary] + arguments, environment: environment)
        let code = await child.wait(timeout: .seconds(60))
        if code == nil { child.signal(SIGKILL); _ = child.wait() }
        defer { try? FileManager.default.removeItem(atPath: child.outputPath) }
        return (code, child.output, ContinuousClock.now - started)
    }

    func count(_ db: ArrayDatabase, _ sql: String) async throws -> Int {
        for try await n in try await db.client.query(.init(unsafeSQL: sql)).decode(Int64.self) { return Int(n) }
        return 0
    }

    @Test func migrateAndServeOverVerifiedTLSApplyCommandsAndRefuseAWrongCA() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build arrayfsm first (swift build --build-tests)")
        let authority = try TestCertificateAuthority()
        defer { authority.remove() }
        let stranger = try TestCertificateAuthority(name: "some other CA")
        defer { stranger.remove() }
        let cluster = try ThrowawayPostgres(password: "pw-secret", tls: try authority.issueServerCertificate(dnsNames: ["localhost"]))
        defer { cluster.stop() }
        var url = cluster.url
        url.host = "localhost"
        url.sslMode = .verifyFull
        url.sslRootCert = authority.certificateFile

        let migrate = try await run(["migrate"], environment: ["ARRAYFSM_DATABASE_URL": url.string])
        #expect(migrate.code == 0, "\(migrate.output)")
        #expect(migrate.output.contains("applied migrations"), "\(migrate.output)")
        // Not even PostgresNIO's trace logging (startup, authentication) shows the password.
        let traced = try await run(["migrate", "--log-level", "trace"], environment: ["ARRAYFSM_DATABASE_URL": url.string])
        #expect(traced.code == 0)
        #expect(traced.output.contains("is up to date"))
        #expect(!traced.output.contains("pw-secret"))

        var wrongCA = url
        wrongCA.sslRootCert = stranger.certificateFile
        var wrongPassword = url
        wrongPassword.password = "not-the-secret"
        for (refused, reason) in [
            (wrongCA, "TLS refused: the server's certificate is not signed by a CA in \(stranger.certificateFile)"),
            (wrongPassword, "authentication failed: password authentication failed for user \"postgres\""),
        ] {
            for tool in [["migrate"], ["serve", "--bootstrap-servers", "127.0.0.1:1"]] {
                let result = try await run(tool, environment: ["ARRAYFSM_DATABASE_URL": refused.string])
                #expect(result.code == 1)
                #expect(result.output == "arrayfsm: cannot connect to PostgreSQL at localhost:\(url.port): \(reason)\n")
                #expect(!result.output.contains("secret"))
            }
        }

        try await url.withClient(maxConnections: 2, logger: logger) { client in
            let db = ArrayDatabase(client: client)
            let harness = try ServiceHarness(database: db)
            let array = try await ArrayFixture.make(db, tasks: 5)
            let serve = try harness.startServerProcess(binary: Self.binary, databaseURL: url, extraEnvironment: ["ARRAYFSM_LOG_LEVEL": "info"])
            defer { serve.signal(SIGKILL); _ = serve.wait() }
            try await harness.produce([(CommandMessage.key(arrayID: array.arrayID), CommandMessage.json("record_array_batch_num", id: "over-tls", payload: [
                "array_id": array.arrayID, "task_ids": array.taskIDs, "task_resources_id": 1, "workflow_run_id": 1]))])
            let results = try await harness.read(harness.topics.results) { $0.contains { $0.json["command_id"] as? String == "over-tls" } }
            #expect(results.first { $0.json["command_id"] as? String == "over-tls" }?.json["status"] as? String == "ok")
            #expect(try await db.taskCounts(arrayID: array.arrayID) == ["Q": 5])
            #expect(try await count(db, "SELECT count(*) FROM arrayfsm_processed_command WHERE command_id = 'over-tls'") == 1)
            // serve's own sessions are encrypted.
            #expect(try await count(db, """
                SELECT count(*) FROM pg_stat_activity JOIN pg_stat_ssl USING (pid)
                WHERE application_name = 'arrayfsm serve' AND ssl
                """) >= 1)
            #expect(try await count(db, """
                SELECT count(*) FROM pg_stat_activity JOIN pg_stat_ssl USING (pid)
                WHERE application_name = 'arrayfsm serve' AND NOT ssl
                """) == 0)
            serve.signal(SIGTERM)
            #expect(await serve.wait(timeout: .seconds(60)) == 0, "\(serve.output)")
            #expect(serve.output.contains("postgres://postgres:***@localhost:\(url.port)/postgres?sslmode=verify-full"), "\(serve.output)")
            #expect(!serve.output.contains("secret"), "\(serve.output)")
            try await harness.shutdown()
        }
    }

    @Test func everyToolReportsAnUnreachableDatabaseInOneLineWithinSecondsWithoutThePassword() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build arrayfsm first (swift build --build-tests)")
        let port = try ThrowawayPostgres.freePort()
        var noTLS = try await TestPostgres.server().url
        noTLS.sslMode = .require
        noTLS.password = "secret"
        let cases: [(url: String, code: Int32, line: String)] = [
            ("postgres://nobody:secret@127.0.0.1:\(port)/x",
             1, "arrayfsm: cannot connect to PostgreSQL at 127.0.0.1:\(port): connection refused (is the server running and listening there?)"),
            ("postgres://nobody:secret@no-such-host.invalid/x", 1, "arrayfsm: cannot connect to PostgreSQL at no-such-host.invalid:5432: host not found"),
            (noTLS.string, 1, "arrayfsm: cannot connect to PostgreSQL at \(noTLS.serverAddress): TLS refused: the server does not offer TLS, and sslmode requires it"),
            ("postgres://u:se cret@h:x/db", 64, "arrayfsm: database URL must look like postgres://user:password@host:5432/database, got 'postgres://u:***@h:x/db'"),
            ("postgres://u:secret@[::1/db", 64, "arrayfsm: database URL must look like postgres://user:password@host:5432/database, got 'postgres://u:***@[::1/db'"),
            ("postgres://u:secret@h/db?sslmode=verify", 64, "arrayfsm: sslmode must be one of disable, allow, prefer, require, verify-ca, verify-full, got 'verify'"),
        ]
        let tools = [["migrate"], ["serve", "--bootstrap-servers", "127.0.0.1:1"], ["seed"], ["bench-sql"], ["bench-serve"]]
        for (url, code, line) in cases {
            for tool in tools {
                let result = try await run(tool, environment: ["ARRAYFSM_DATABASE_URL": url, "ARRAYFSM_CONNECT_TIMEOUT_SECONDS": "5"])
                #expect(result.code == code, "\(tool) \(url): \(result.output)")
                #expect(result.output == line + "\n", "\(tool)")
                #expect(!result.output.contains("secret"), "\(tool)")
                #expect(result.took < .seconds(10), "\(tool) took \(result.took)")
            }
        }
        // A server that takes the connection and never answers: the flag's timeout, then one line.
        let silent = try SilentListener()
        let hung = try await run(["migrate", "--connect-timeout-seconds", "2"],
                                 environment: ["ARRAYFSM_DATABASE_URL": "postgres://nobody:secret@127.0.0.1:\(silent.port)/x?sslmode=disable"])
        #expect(hung.code == 1)
        #expect(hung.output == "arrayfsm: cannot connect to PostgreSQL at 127.0.0.1:\(silent.port): no session within 2 s (connect timeout)\n")
        #expect(hung.took < .seconds(6), "took \(hung.took)")
    }

    @Test func preferWarnsThatItMayFallBackToPlainText() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build arrayfsm first (swift build --build-tests)")
        try await TestPostgres.withDatabase { _, url in
            var prefer = url
            prefer.sslMode = .prefer
            let result = try await run(["migrate"], environment: ["ARRAYFSM_DATABASE_URL": prefer.string])
            #expect(result.code == 0, "\(result.output)")
            #expect(result.output.contains("sslmode=prefer: the connections to PostgreSQL at \(url.serverAddress) fall back to plain text when the server offers no TLS"), "\(result.output)")
            let disabled = try await run(["migrate"], environment: ["ARRAYFSM_DATABASE_URL": url.string])
            #expect(disabled.code == 0)
            #expect(!disabled.output.contains("plain text"), "sslmode=disable is a choice, not a fallback")
        }
    }
}
