import ArrayFSM
import Foundation
import Logging
import PostgresNIO

/// Applies a batch of command messages in one database transaction.
///
/// In that one transaction: each command is claimed in the processed-commands table (a repeat
/// re-emits the stored result and changes nothing), applied, and its result and transition events
/// are written to the outbox; undecodable messages go to the outbox for the dead-letter topic.
/// A command refused by validation or by the FSM is answered `rejected` without disturbing the
/// others: operations refuse before their first write, so the transaction stays usable.
///
/// If the batch transaction fails on a database error, the batch is applied again one command per
/// transaction, so a single poison command is isolated and answered while the rest go through.
/// Errors that mean the database is unreachable are thrown: the caller must not store offsets.
public struct CommandBatchProcessor: Sendable {
    public var database: ArrayDatabase
    public var decoder: CommandDecoder
    var events: EventWriter

    public init(database: ArrayDatabase, topics: Topics = Topics(), maxMessageBytes: Int = 1 << 20, maxEventBytes: Int = 512 * 1024) {
        self.database = database
        self.decoder = CommandDecoder(maxMessageBytes: maxMessageBytes)
        self.events = EventWriter(topics: topics, maxEventBytes: maxEventBytes)
    }

    /// What a batch did, for metrics and logs.
    public struct Outcome: Sendable {
        /// (command type, status) per command: status is `ok`, `rejected`, `duplicate` or `dead_letter`.
        public var commands: [(type: String, status: String)] = []
        /// Rows moved per (entity, from, to).
        public var transitions: [String: Int] = [:]
        public var outboxMessages = 0
        /// Whether the batch had to be applied one command at a time.
        public var fellBackToSingles = false
        /// Where the batch's time went (for the debug log): decoding, the operations' statements,
        /// storing answers and events; the rest of the batch's time is claiming ids, BEGIN and COMMIT.
        public var timings = Timings()
    }

    /// How long a batch's parts took. All zero when the batch fell back to one transaction per
    /// command (each of those has its own).
    public struct Timings: Sendable {
        /// Decoding the messages, before the transaction (the database waits for it).
        public var decode = Duration.zero
        /// Claiming ids aside, everything the commands did: their statements, and building their answers.
        public var operations = Duration.zero
        /// Writing the processed-commands rows and the outbox.
        public var store = Duration.zero
    }

    /// Applies `batch`; returns after the transaction (or transactions) committed.
    public func process(_ batch: [IncomingCommand], logger: Logger) async throws -> Outcome {
        guard !batch.isEmpty else { return Outcome() }
        let started = ContinuousClock.now
        let decoded = await decodeAll(batch)
        let decodedAt = ContinuousClock.now
        do {
            var outcome = try await database.transaction(logger: logger) { connection in
                try await apply(decoded, on: connection, logger: logger)
            }
            outcome.timings.decode = decodedAt - started
            return outcome
        } catch let error where Self.isCommandFault(error) {
            logger.warning("batch failed on a database error; applying its commands one by one", metadata: ["error": "\(error)"])
            var total = Outcome()
            total.fellBackToSingles = true
            for item in decoded {
                let outcome: Outcome
                do {
                    outcome = try await database.transaction(logger: logger) { connection in
                        try await apply([item], on: connection, logger: logger)
                    }
                } catch let error where Self.isCommandFault(error) {
                    do {
                        outcome = try await answerDatabaseFault(item, error: error, logger: logger)
                    } catch let second where Self.isCommandFault(second) {
                        // Not even the refusal can be stored: the message goes to the dead-letter topic.
                        outcome = try await database.transaction(logger: logger) { connection in
                            try await apply([.deadLetter(code: "database_refused", reason: Self.describe(error), item.message)],
                                            on: connection, logger: logger)
                        }
                    }
                }
                total.commands += outcome.commands
                total.transitions.merge(outcome.transitions, uniquingKeysWith: +)
                total.outboxMessages += outcome.outboxMessages
            }
            return total
        }
    }

    /// A decoded message, or why it is not a command.
    enum Decoded: Sendable {
        case command(Command, IncomingCommand)
        case rejected(CommandEnvelope, OperationError, IncomingCommand)
        case deadLetter(code: String, reason: String, IncomingCommand)
    }

    func decode(_ message: IncomingCommand) -> Decoded {
        guard let value = message.value else {
            return .deadLetter(code: "no_value", reason: "the message has no value", message)
        }
        do {
            return .command(try decoder.decode(Data(value)), message)
        } catch let error as CommandDecoder.Rejected {
            return .rejected(error.envelope, error.error, message)
        } catch let error as CommandDecoder.Undecodable {
            return .deadLetter(code: error.code, reason: error.message, message)
        } catch {
            return .deadLetter(code: "not_json", reason: "\(error)", message)
        }
    }

    /// Decodes a large batch on every core. The database waits idle while a batch is decoded, and
    /// decoding is not cheap: a 1,000-entry distributor-id map takes about a millisecond.
    func decodeAll(_ batch: [IncomingCommand]) async -> [Decoded] {
        let bytes = batch.reduce(0) { $0 + ($1.value?.count ?? 0) }
        let lanes = min(ProcessInfo.processInfo.activeProcessorCount, batch.count)
        guard lanes > 1, bytes >= Self.parallelDecodeBytes else { return batch.map(decode) }
        let size = (batch.count + lanes - 1) / lanes
        return await withTaskGroup(of: (Int, [Decoded]).self) { group in
            for start in stride(from: 0, to: batch.count, by: size) {
                let slice = batch[start..<min(start + size, batch.count)]
                group.addTask { (start, slice.map(decode)) }
            }
            var parts: [(start: Int, decoded: [Decoded])] = []
            for await part in group { parts.append(part) }
            return parts.sorted { $0.start < $1.start }.flatMap(\.decoded)
        }
    }

    /// Batches smaller than this are decoded on one core: splitting costs more than it saves.
    static let parallelDecodeBytes = 256 * 1024

    /// The stored answer of a processed command.
    struct StoredResult {
        var events: [[UInt8]]
        var replyTo: String?
        var key: [UInt8]?
    }

    func apply(_ items: [Decoded], on connection: PostgresConnection, logger: Logger) async throws -> Outcome {
        var outcome = Outcome()
        // Results and dead letters; transition events are kept apart (with how many of the others
        // came before each) so that they can follow all of them — see `ordered`.
        var outbox: [OutboxMessage] = []
        var transitionMessages: [(after: Int, message: OutboxMessage)] = []
        var processed: [ProcessedCommands.Answer] = []

        // Claim every command id first. A concurrent claim of the same id (another consumer after
        // a rebalance) waits here for that transaction and then counts as a repeat.
        // Sorted: two consumers claiming overlapping ids (a partition moving between them) lock in one order.
        let ids = Set(items.compactMap { $0.envelope?.commandID }).sorted()
        let claimed = try await ProcessedCommands.claim(ids, on: connection, logger: logger)
        var stored = try await ProcessedCommands.results(ids.filter { !claimed.contains($0) }, on: connection, logger: logger)

        /// Writes a command's answer and events, and remembers it for repeats later in the batch.
        func answer(_ command: Command, _ message: IncomingCommand, _ result: Result<ResultPayload, OperationError>,
                    _ transitions: [TransitionGroup], durationMS: Double) throws {
            let envelope = command.envelope
            let now = Date()
            let resultEvents = events.resultEvents(envelope: envelope, outcome: result, processedAt: now, durationMS: durationMS)
            outbox += events.resultMessages(resultEvents, key: message.key, replyTo: envelope.replyTo, traceparent: message.traceparent)
            transitionMessages += events.transitionMessages(
                commandID: envelope.commandID, transitions: transitions, at: now, traceparent: message.traceparent
            ).map { (outbox.count, $0) }
            let status = (try? result.get()) == nil ? "rejected" : "ok"
            processed.append(.init(id: envelope.commandID, type: envelope.type, status: status, events: resultEvents,
                                   replyTo: envelope.replyTo, key: message.key))
            stored[envelope.commandID] = StoredResult(events: resultEvents, replyTo: envelope.replyTo, key: message.key)
            outcome.commands.append((type: envelope.type, status: status))
            for group in transitions {
                outcome.transitions["\(group.entity.rawValue):\(group.from ?? "new")->\(group.to)", default: 0] += group.ids.count
            }
        }

        let operationsStarted = ContinuousClock.now
        var index = 0
        while index < items.count {
            let item = items[index]
            index += 1
            if case .deadLetter(let code, let reason, let message) = item {
                outbox.append(events.deadLetter(message, code: code, reason: reason))
                outcome.commands.append((type: "unknown", status: "dead_letter"))
                logger.warning("dead-lettered a message", metadata: [
                    "topic": "\(message.topic)", "partition": "\(message.partition)", "offset": "\(message.offset)", "code": "\(code)",
                ])
                continue
            }
            if let envelope = item.envelope, let previous = stored[envelope.commandID] {
                // A repeat (re-delivered, re-produced, or twice in this batch): the original answer again.
                outbox += events.resultMessages(previous.events, key: previous.key, replyTo: previous.replyTo,
                                                traceparent: item.message.traceparent)
                outcome.commands.append((type: envelope.type, status: "duplicate"))
                continue
            }
            switch item {
            case .deadLetter:
                break
            case .rejected(let envelope, let error, let message):
                let result = events.resultEvents(envelope: envelope, outcome: .failure(error), processedAt: Date(), durationMS: 0)
                outbox += events.resultMessages(result, key: message.key, replyTo: envelope.replyTo, traceparent: message.traceparent)
                processed.append(.init(id: envelope.commandID, type: envelope.type, status: "rejected", events: result,
                                       replyTo: envelope.replyTo, key: message.key))
                stored[envelope.commandID] = StoredResult(events: result, replyTo: envelope.replyTo, key: message.key)
                outcome.commands.append((type: envelope.type, status: "rejected"))
                logger.info("rejected a command", metadata: ["command_id": "\(envelope.commandID)", "code": "\(error.code.rawValue)"])

            case .command(let command, let message):
                // A run of commands that one set-based statement can apply together.
                let run = CommandRun.collect(startingWith: command, message, in: items, from: index, answered: stored)
                if run.count > 1 {
                    let start = ContinuousClock.now
                    let results = try await run.apply(on: connection, logger: logger)
                    let durationMS = (ContinuousClock.now - start).milliseconds / Double(run.count)
                    for ((runCommand, runMessage), (result, transitions)) in zip(run.commands, results) {
                        try answer(runCommand, runMessage, result, transitions, durationMS: durationMS)
                    }
                    index += run.count - 1
                    continue
                }
                let start = ContinuousClock.now
                let result: Result<ResultPayload, OperationError>
                var transitions: [TransitionGroup] = []
                do {
                    try command.validate()
                    let (payload, moved) = try await command.operation.apply(on: connection, logger: logger)
                    result = .success(payload)
                    transitions = moved
                } catch let error as OperationError {
                    result = .failure(error)
                }
                try answer(command, message, result, transitions, durationMS: (ContinuousClock.now - start).milliseconds)
            }
        }
        let storeStarted = ContinuousClock.now
        try await ProcessedCommands.record(processed, on: connection, logger: logger)
        outbox = ordered(outbox, transitionMessages)
        try await Outbox.insert(outbox, on: connection, logger: logger)
        outcome.outboxMessages = outbox.count
        outcome.timings.operations = storeStarted - operationsStarted
        outcome.timings.store = ContinuousClock.now - storeStarted
        return outcome
    }

    /// The batch's messages in publishing order: results (and dead letters) before transition
    /// events. Schedulers wait on the results, and the relay publishes in outbox order, so the
    /// batch's last result would otherwise queue behind every transition event of the batch
    /// (megabytes for 1,000-TI commands). Each topic keeps the commands' order, which is all the
    /// contract orders — unless a result goes to the transitions topic too (topics are configurable
    /// and `reply_to` is free): then everything stays in command order.
    func ordered(_ others: [OutboxMessage], _ transitions: [(after: Int, message: OutboxMessage)]) -> [OutboxMessage] {
        guard others.contains(where: { $0.topic == events.topics.transitions }) else {
            return others + transitions.map(\.message)
        }
        var merged: [OutboxMessage] = []
        merged.reserveCapacity(others.count + transitions.count)
        var next = transitions.startIndex
        for (index, message) in others.enumerated() {
            while next < transitions.endIndex && transitions[next].after == index {
                merged.append(transitions[next].message)
                next += 1
            }
            merged.append(message)
        }
        merged += transitions[next...].map(\.message)
        return merged
    }

    /// A command whose own transaction failed on a database error: answered `rejected` with the
    /// error, in a transaction of its own, so it never blocks its partition.
    func answerDatabaseFault(_ item: Decoded, error: any Error, logger: Logger) async throws -> Outcome {
        guard case .command(let command, let message) = item else {
            return try await database.transaction(logger: logger) { connection in
                try await apply([.deadLetter(code: "database_refused", reason: Self.describe(error), item.message)],
                                on: connection, logger: logger)
            }
        }
        let fault = OperationError(.invalidArgument, "the database refused the command: \(Self.describe(error))")
        logger.error("command failed on a database error", metadata: ["command_id": "\(command.envelope.commandID)", "error": "\(error)"])
        return try await database.transaction(logger: logger) { connection in
            try await apply([.rejected(command.envelope, fault, message)], on: connection, logger: logger)
        }
    }

    /// Whether an error is the command's fault (a server-side refusal such as a constraint), as
    /// opposed to the database being unreachable or shutting down, which must stop the consumer.
    static func isCommandFault(_ error: any Error) -> Bool {
        guard let error = error as? PSQLError, let state = error.serverInfo?[.sqlState] else { return false }
        // An allowlist: only data exceptions (22), integrity violations (23) and program limits (54)
        // can be the command's fault. Anything else — a missing column during a rollout (42), a
        // missing grant, lock or statement timeouts, shutdowns — must not be answered "rejected"
        // for good: it stops the batch, and the consumer retries it.
        return ["22", "23", "54"].contains(String(state.prefix(2)))
    }

    static func describe(_ error: any Error) -> String {
        guard let error = error as? PSQLError, let info = error.serverInfo else { return "\(error)" }
        return "\(info[.sqlState] ?? "?") \(info[.message] ?? "")"
    }
}

extension CommandBatchProcessor.Decoded {
    var envelope: CommandEnvelope? {
        switch self {
        case .command(let command, _): command.envelope
        case .rejected(let envelope, _, _): envelope
        case .deadLetter: nil
        }
    }

    var message: IncomingCommand {
        switch self {
        case .command(_, let message), .rejected(_, _, let message), .deadLetter(_, _, let message): message
        }
    }
}
