import ArgumentParser

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
