// arrayfsm — the command line: argument parsing and wiring of the modules; no logic of its own.
import ArgumentParser
import ArrayFSM
import ArrayFSMService

/// `arrayfsm outbox drop`: parked rows are deleted; their events are never published.
struct OutboxDropCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drop",
        abstract: "Delete parked rows (--id N… or --all); their events are never published. Rows not parked are never touched."
    )

    @OptionGroup var action: ParkedRowAction

    func run() async throws {
        try await action.perform("dropped") { selection, connection, logger in
            try await Outbox.drop(selection, on: connection, logger: logger)
        }
    }
}
