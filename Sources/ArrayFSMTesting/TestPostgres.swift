// ArrayFSMTesting — what only tests import: test databases, row readers, schema checks, a test CA.
import ArrayFSM
import ArrayFSMTools
import Foundation
import Logging
import PostgresNIO

/// The PostgreSQL server the tests use: `DATABASE_URL` when set, else one ``ThrowawayPostgres``
/// per test process, stopped when the process exits.
///
/// Each test gets a database of its own, cloned from a migrated template, so tests run in parallel.
public enum TestPostgres {
    /// A logger for tests; `LOG_LEVEL=debug` shows SQL.
    public static var logger: Logger { ToolLogger.make(label: "arrayfsm.test") }

    /// The server and the name of its migrated template database, set up once per process.
    public static func server() async throws -> (url: DatabaseURL, template: String) {
        try await SharedServer.shared.get()
    }

    /// Runs `body` with a freshly migrated database of its own, dropped afterwards.
    public static func withDatabase<Result: Sendable>(
        maxConnections: Int = 8,
        _ body: (ArrayDatabase) async throws -> Result
    ) async throws -> Result {
        try await withDatabase(maxConnections: maxConnections) { database, _ in try await body(database) }
    }

    /// Runs `body` with a freshly migrated database of its own and its URL (for child processes).
    public static func withDatabase<Result: Sendable>(
        maxConnections: Int = 8,
        _ body: (ArrayDatabase, DatabaseURL) async throws -> Result
    ) async throws -> Result {
        let (url, template) = try await server()
        let name = "t_\(UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: ""))"
        try await SharedServer.shared.createDatabase(name, template: template)
        do {
            let databaseURL = url.withDatabase(name)
            // The session settings serve runs with, so tests plan statements as it does.
            let result = try await databaseURL.withClient(
                maxConnections: maxConnections, parameters: DatabaseURL.batchParameters(), logger: logger
            ) { client in
                try await body(ArrayDatabase(client: client), databaseURL)
            }
            try? await SharedServer.shared.dropDatabase(name)
            return result
        } catch {
            try? await SharedServer.shared.dropDatabase(name)
            throw error
        }
    }
}

/// Starts the server once and serializes CREATE/DROP DATABASE (a template must have no other users).
actor SharedServer {
    static let shared = SharedServer()

    private var setup: Task<(url: DatabaseURL, template: String), any Error>?

    func get() async throws -> (url: DatabaseURL, template: String) {
        if let setup { return try await setup.value }
        let task = Task { try await Self.start() }
        setup = task
        return try await task.value
    }

    func createDatabase(_ name: String, template: String) async throws {
        let (url, _) = try await get()
        try await url.withClient(maxConnections: 1, logger: TestPostgres.logger) { client in
            // A session that has just closed on the template (the migration's, its connection
            // check's) may still be ending on the server: CREATE DATABASE then refuses with 55006
            // "source database is being accessed by other users". It goes away within moments.
            var attempt = 1
            while true {
                do {
                    try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name) TEMPLATE \(template)"))
                    return
                } catch let error as PSQLError where error.serverInfo?[.sqlState] == "55006" && attempt < 20 {
                    attempt += 1
                    try await Task.sleep(for: .milliseconds(250))
                }
            }
        }
    }

    func dropDatabase(_ name: String) async throws {
        let (url, _) = try await get()
        try await url.withClient(maxConnections: 1, logger: TestPostgres.logger) { client in
            try await client.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)"))
        }
    }

    private static func start() async throws -> (url: DatabaseURL, template: String) {
        let url: DatabaseURL
        if let given = ProcessInfo.processInfo.environment["DATABASE_URL"], !given.isEmpty {
            url = try DatabaseURL(given)
        } else {
            let cluster = try ThrowawayPostgres()
            ClusterAtExit.register(cluster)
            url = cluster.url
        }
        let template = "arrayfsm_template_\(getpid())"
        try await url.withClient(maxConnections: 1, logger: TestPostgres.logger) { client in
            try await client.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(template)"))
            try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(template)"))
        }
        try await url.withDatabase(template).withClient(maxConnections: 1, logger: TestPostgres.logger) { client in
            try await Migrator().migrate(client, logger: TestPostgres.logger)
        }
        return (url, template)
    }
}

/// Stops the throwaway cluster when the test process exits (Swift Testing has no global teardown).
enum ClusterAtExit {
    nonisolated(unsafe) private static var cluster: ThrowawayPostgres?

    static func register(_ cluster: ThrowawayPostgres) {
        Self.cluster = cluster
        atexit { ClusterAtExit.cluster?.stop() }
    }
}
