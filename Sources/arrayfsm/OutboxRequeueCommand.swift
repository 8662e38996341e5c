// arrayfsm — the command line: argument parsing and wiring of the modules; no logic of its own.
import ArgumentParser
import ArrayFSM
import ArrayFSMService

/// `arrayfsm outbox requeue`: parked rows become waiting rows again.
struct OutboxRequeueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "requeue",
        abstract: "Clear the parked state of rows (--id N… or --all): the relay tries them again, failure count reset."
    )

    @OptionGroup var action: ParkedRowAction

    func run() async throws {
        try await action.perform("requeued") { selection, connection, logger in
            try await Outbox.requeue(selection, on: connection, logger: logger)
        }
    }
}
