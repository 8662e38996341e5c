// arrayfsm — the command line: argument parsing and wiring of the modules; no logic of its own.
import ArgumentParser
import ArrayFSM

/// `arrayfsm migrate`: applies pending schema migrations.
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply pending migrations (idempotent; safe to run from several processes at once)."
    )

    @Option(help: "postgres://user:password@host:port/database (env ARRAYFSM_DATABASE_URL)")
    var databaseURL: String?

    @OptionGroup var connect: ConnectOptions

    @OptionGroup var log: LogOptions

    func run() async throws {
        let url = try Environment.databaseURL(databaseURL)
        let logger = log.logger("arrayfsm.migrate", default: "info")
        let applied = try await url.withClient(maxConnections: 1, connectTimeout: try connect.timeout(), logger: logger) { client in
            try await Migrator().migrate(client, logger: logger)
        }
        if applied.isEmpty {
            print("database \(url.database) is up to date (\(Migration.all.count) migrations)")
        } else {
            print("applied migrations \(applied.map(String.init).joined(separator: ", ")) to \(url.database)")
        }
    }
}
