import ArgumentParser
import ArrayFSM
import ArrayFSMService

/// `arrayfsm outbox drop`: parked rows are deleted; their events are never published.
struct OutboxDropCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drop",
        abstract: "Delete parked rows (--id N… or --all); their events are never published. Rows not parked are never touched."
    )

    @Option(help: "postgres://… (env ARRAYFSM_DATABASE_URL)") var databaseURL: String?
    @OptionGroup var selection: ParkedRowSelection
    @Option(help: "trace, debug, info, notice, warning, error (env ARRAYFSM_LOG_LEVEL)") var logLevel: String?

    func run() async throws {
        let url = try Environment.databaseURL(databaseURL)
        let logger = Environment.logger("arrayfsm.outbox", level: logLevel ?? "warning")
        let dropped = try await url.withClient(maxConnections: 1, logger: logger) { client in
            try await client.withConnection { connection in
                try await Outbox.drop(selection.all ? .all : .ids(selection.ids), on: connection, logger: logger)
            }
        }
        print("dropped \(dropped.count) row\(dropped.count == 1 ? "" : "s")\(dropped.isEmpty ? "" : ": " + dropped.map(String.init).joined(separator: " "))")
    }
}
