// arrayfsm — the command line: argument parsing and wiring of the modules; no logic of its own.
import ArgumentParser
import ArrayFSM
import ArrayFSMService
import Logging
import PostgresNIO

/// `arrayfsm outbox`: the operator's view of outbox rows the relay parked as undeliverable.
struct OutboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox",
        abstract: "List, requeue or drop parked outbox rows (events the relay gave up delivering).",
        discussion: """
            A row is parked when its delivery kept failing (--outbox-park-after-seconds of serve)
            while other rows were delivered: a topic that refuses it, an unknown topic, a message
            over the topic's size limit, no write permission. Fix the cause, then requeue it (the
            relay tries again, in its place by id) or drop it (its event is never published).
            """,
        subcommands: [OutboxListCommand.self, OutboxRequeueCommand.self, OutboxDropCommand.self]
    )
}

/// Options shared by `outbox requeue` and `outbox drop`.
struct ParkedRowSelection: ParsableArguments {
    @Option(name: .customLong("id"), parsing: .upToNextOption, help: "Parked row ids (repeatable; several after one --id)")
    var ids: [Int64] = []

    @Flag(help: "Every parked row") var all = false

    func validate() throws {
        if all == !ids.isEmpty { throw ValidationError("give either --id N… or --all") }
    }
}

/// What `outbox requeue` and `outbox drop` share: the database, the rows, and the line that says
/// which rows the action took.
struct ParkedRowAction: ParsableArguments {
    @Option(help: "postgres://… (env ARRAYFSM_DATABASE_URL)") var databaseURL: String?
    @OptionGroup var selection: ParkedRowSelection
    @OptionGroup var log: LogOptions

    /// Runs `action` on the selected rows and prints "`done` N rows: id id …".
    func perform(
        _ done: String, _ action: @Sendable (Outbox.Selection, PostgresConnection, Logger) async throws -> [Int64]
    ) async throws {
        let url = try Environment.databaseURL(databaseURL)
        let logger = log.logger("arrayfsm.outbox")
        let selected: Outbox.Selection = selection.all ? .all : .ids(selection.ids)
        let rows = try await url.withClient(maxConnections: 1, logger: logger) { client in
            try await client.withConnection { connection in try await action(selected, connection, logger) }
        }
        print("\(done) \(rows.count) row\(rows.count == 1 ? "" : "s")\(rows.isEmpty ? "" : ": " + rows.map(String.init).joined(separator: " "))")
    }
}
