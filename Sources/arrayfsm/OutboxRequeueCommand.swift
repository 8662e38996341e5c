import ArgumentParser
import ArrayFSM
import ArrayFSMService

/// `arrayfsm outbox requeue`: parked rows become waiting rows again.
struct OutboxRequeueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "requeue",
        abstract: "Clear the parked state of rows (--id N… or --all): the relay tries them again, failure count reset."
    )

    @Option(help: "postgres://… (env ARRAYFSM_DATABASE_URL)") var databaseURL: String?
    @OptionGroup var selection: ParkedRowSelection
    @Option(help: "trace, debug, info, notice, warning, error (env ARRAYFSM_LOG_LEVEL)") var logLevel: String?

    func run() async throws {
        let url = try Environment.databaseURL(databaseURL)
        let logger = Environment.logger("arrayfsm.outbox", level: logLevel ?? "warning")
        let requeued = try await url.withClient(maxConnections: 1, logger: logger) { client in
            try await client.withConnection { connection in
                try await Outbox.requeue(selection.all ? .all : .ids(selection.ids), on: connection, logger: logger)
            }
        }
        print("requeued \(requeued.count) row\(requeued.count == 1 ? "" : "s")\(requeued.isEmpty ? "" : ": " + requeued.map(String.init).joined(separator: " "))")
    }
}
