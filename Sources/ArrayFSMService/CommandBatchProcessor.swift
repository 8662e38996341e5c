// ArrayFSMService — the processor: command batches from Kafka, one transaction each, the outbox
// and its relay, readiness and metrics. Uses ArrayFSM for the domain and Kafka for the wire.
import ArrayFSM
import Foundation
import Logging
import PostgresNIO

/// Applies a batch of command messages in one database transaction.
///
/// In that one transaction: each command is claimed in the processed-commands table (a repeat
/// re-emits the stored result and changes nothing; a reused id with another command is refused),
/// applied, and its result and transition events are written to the outbox; undecodable messages
/// go to the outbox for the dead-letter topic. A command refused by validation or by the FSM is
/// answered `rejected` without disturbing the others: operations refuse before their first
/// write, so the transaction stays usable.
///
/// A failed batch transaction is handled by its ``DatabaseFault``: an outage is thrown (the caller
/// must not store offsets, and retries); a command's fault sends the batch one command per
/// transaction at once; an unexpected error is retried ``maxAttempts`` times first. One by one, a
/// poison command is isolated and answered while the rest go through: no batch is retried forever.
public struct CommandBatchProcessor: Sendable {
    public var database: ArrayDatabase
    public var decoder: CommandDecoder
    var events: EventWriter
    /// Transactions a batch (or, one by one, a command) gets for an unexpected database error.
    public var maxAttempts: Int
    /// The pause before the second attempt; doubled for each one after.
    public var retryDelay: Duration

    public init(
        database: ArrayDatabase, topics: Topics = Topics(), maxMessageBytes: Int = 1 << 20, maxEventBytes: Int = 512 * 1024,
        maxAttempts: Int = 3, retryDelay: Duration = .milliseconds(200)
    ) {
        self.database = database
        self.decoder = CommandDecoder(maxMessageBytes: maxMessageBytes)
        self.events = EventWriter(topics: topics, maxEventBytes: maxEventBytes)
        self.maxAttempts = max(1, maxAttempts)
        self.retryDelay = retryDelay
    }

    /// Applies `batch`; returns after the transaction (or transactions) committed.
    public func process(_ batch: [IncomingCommand], logger: Logger) async throws -> Outcome {
        guard !batch.isEmpty else { return Outcome() }
        let started = ContinuousClock.now
        let decoded = await decodeAll(batch)
        let decodedAt = ContinuousClock.now
        var attempt = 1
        while true {
            do {
                var outcome = try await database.transaction(logger: logger) { connection in
                    try await apply(decoded, on: connection, logger: logger)
                }
                outcome.timings.decode = decodedAt - started
                return outcome
            } catch {
                switch DatabaseFault(error) {
                case .outage:
                    throw error
                case .unexpected where attempt < maxAttempts:
                    logger.warning("batch failed on a database error; retrying", metadata: [
                        "error": "\(DatabaseFault.describe(error))", "attempt": "\(attempt)", "of": "\(maxAttempts)",
                    ])
                    try await Task.sleep(for: retryDelay * (1 << (attempt - 1)))
                    attempt += 1
                case .unexpected, .command:
                    logger.warning("batch failed on a database error; applying its commands one by one", metadata: [
                        "error": "\(DatabaseFault.describe(error))",
                    ])
                    return try await applyOneByOne(decoded, logger: logger)
                }
            }
        }
    }

    /// Each command in a transaction of its own: a command that keeps failing on a database
    /// error is answered `rejected` (in a transaction of its own too) and the others go through.
    /// An outage is thrown: the commands applied so far stay applied, and their repeats are
    /// answered from the processed-commands table when the batch comes again.
    func applyOneByOne(_ decoded: [Decoded], logger: Logger) async throws -> Outcome {
        var total = Outcome()
        total.fellBackToSingles = true
        for item in decoded {
            var attempt = 1
            let outcome: Outcome
            while true {
                do {
                    outcome = try await database.transaction(logger: logger) { connection in
                        try await apply([item], on: connection, logger: logger)
                    }
                    break
                } catch {
                    let fault = DatabaseFault(error)
                    if fault == .outage { throw error }
                    if fault == .unexpected && attempt < maxAttempts {
                        try await Task.sleep(for: retryDelay * (1 << (attempt - 1)))
                        attempt += 1
                        continue
                    }
                    outcome = try await answerDatabaseFault(item, error: error, fault: fault, logger: logger)
                    break
                }
            }
            total.commands += outcome.commands
            total.transitions.merge(outcome.transitions, uniquingKeysWith: +)
            total.outboxMessages += outcome.outboxMessages
        }
        return total
    }

    /// A decoded message, or why it is not a command.
    enum Decoded: Sendable {
        case command(Command, IncomingCommand)
        case rejected(CommandEnvelope, OperationError, IncomingCommand)
        /// Refused before its id is looked at (its `reply_to` is not allowed): answered on the
        /// results topic alone, under an event id of its own, and neither claimed nor stored, so
        /// the same id with an allowed `reply_to` is still a new command.
        case refused(CommandEnvelope, OperationError, IncomingCommand)
        case deadLetter(code: String, reason: String, IncomingCommand)
    }

    func decode(_ message: IncomingCommand) -> Decoded {
        guard let value = message.value else {
            return .deadLetter(code: "no_value", reason: "the message has no value", message)
        }
        let decoded: Decoded
        do {
            decoded = .command(try decoder.decode(Data(value), key: message.key), message)
        } catch let error as CommandDecoder.Rejected {
            decoded = .rejected(error.envelope, error.error, message)
        } catch let error as CommandDecoder.Undecodable {
            return .deadLetter(code: error.code, reason: error.message, message)
        } catch {
            return .deadLetter(code: "not_json", reason: "\(error)", message)
        }
        guard var envelope = decoded.envelope, let replyTo = envelope.replyTo, !events.topics.allowsReply(to: replyTo) else {
            return decoded
        }
        envelope.replyTo = nil
        return .refused(envelope, OperationError(
            .replyToNotAllowed,
            "reply_to '\(replyTo.prefix(64))' is not allowed: reply topics must start with '\(events.topics.replyPrefix)' and not be "
                + "one of arrayfsm's own topics; nothing was applied, and this answer went to \(events.topics.results) only"), message)
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
        /// Nil for commands processed before digests were stored: any repeat matches them.
        var digest: CommandDigest?
        var type: String
        var processedAt: Date

        /// Whether a message with `digest` repeats this command (contract: "Repeats").
        func isRepeat(_ digest: CommandDigest?) -> Bool {
            guard let stored = self.digest, let digest else { return true }
            return stored == digest
        }
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
        func answer(_ command: Command, _ message: IncomingCommand, _ answered: Result<CommandAnswer, OperationError>,
                    durationMS: Double) throws {
            let envelope = command.envelope
            let result = answered.map(\.result)
            let transitions = (try? answered.get().transitions) ?? []
            let now = Date()
            let resultEvents = events.resultEvents(envelope: envelope, outcome: result, processedAt: now, durationMS: durationMS)
            outbox += events.resultMessages(resultEvents, key: message.key, replyTo: envelope.replyTo, traceparent: message.traceparent)
            transitionMessages += events.transitionMessages(
                commandID: envelope.commandID, transitions: transitions, at: now, traceparent: message.traceparent
            ).map { (outbox.count, $0) }
            let status: CommandStatus = (try? result.get()) == nil ? .rejected : .ok
            processed.append(.init(id: envelope.commandID, type: envelope.type, status: status.rawValue, events: resultEvents,
                                   replyTo: envelope.replyTo, key: message.key, digest: envelope.digest))
            stored[envelope.commandID] = StoredResult(events: resultEvents, replyTo: envelope.replyTo, key: message.key,
                                                      digest: envelope.digest, type: envelope.type, processedAt: now)
            outcome.commands.append(CommandCount(envelope.type, status))
            for group in transitions { outcome.transitions[TransitionKind(group), default: 0] += group.ids.count }
        }

        let operationsStarted = ContinuousClock.now
        var index = 0
        while index < items.count {
            let item = items[index]
            index += 1
            if case .deadLetter(let code, let reason, let message) = item {
                outbox.append(events.deadLetter(message, code: code, reason: reason))
                outcome.commands.append(CommandCount(type: nil, status: .deadLetter))
                logger.warning("dead-lettered a message", metadata: [
                    "topic": "\(message.topic)", "partition": "\(message.partition)", "offset": "\(message.offset)", "code": "\(code)",
                ])
                continue
            }
            if case .refused(let envelope, let error, let message) = item {
                let event = events.refusal(envelope: envelope, error: error, eventID: "\(envelope.commandID):\(error.code.rawValue)")
                outbox += events.resultMessages([event], key: message.key, replyTo: nil, traceparent: message.traceparent)
                outcome.commands.append(CommandCount(envelope.type, .rejected))
                logger.info("refused a command", metadata: ["command_id": "\(envelope.commandID)", "code": "\(error.code.rawValue)"])
                continue
            }
            if let envelope = item.envelope, let previous = stored[envelope.commandID] {
                let message = item.message
                if previous.isRepeat(envelope.digest) {
                    // Re-delivered, re-produced, or twice in this batch: the original answer again,
                    // to whoever asks now (the repeat's reply_to) or else where it first went.
                    let replyTo = envelope.replyTo ?? previous.replyTo.flatMap { events.topics.allowsReply(to: $0) ? $0 : nil }
                    outbox += events.resultMessages(previous.events, key: previous.key, replyTo: replyTo, traceparent: message.traceparent)
                    outcome.commands.append(CommandCount(envelope.type, .duplicate))
                } else {
                    let error = OperationError(
                        .commandIDReused,
                        "command_id '\(envelope.commandID.prefix(64))' was used by a \(previous.type) command applied at "
                            + "\(Timestamp.string(previous.processedAt)) with another type, key or payload; nothing was applied: "
                            + "give each new command a new command_id")
                    let event = events.refusal(
                        envelope: envelope, error: error,
                        eventID: "\(envelope.commandID):reused:\(envelope.digest.map { String($0.description.prefix(16)) } ?? "")")
                    outbox += events.resultMessages([event], key: message.key, replyTo: envelope.replyTo, traceparent: message.traceparent)
                    outcome.commands.append(CommandCount(envelope.type, .rejected))
                    logger.info("refused a reused command id", metadata: ["command_id": "\(envelope.commandID)", "original_type": "\(previous.type)"])
                }
                continue
            }
            switch item {
            case .deadLetter, .refused:
                break
            case .rejected(let envelope, let error, let message):
                let now = Date()
                let result = events.resultEvents(envelope: envelope, outcome: .failure(error), processedAt: now, durationMS: 0)
                outbox += events.resultMessages(result, key: message.key, replyTo: envelope.replyTo, traceparent: message.traceparent)
                processed.append(.init(id: envelope.commandID, type: envelope.type, status: CommandStatus.rejected.rawValue, events: result,
                                       replyTo: envelope.replyTo, key: message.key, digest: envelope.digest))
                stored[envelope.commandID] = StoredResult(events: result, replyTo: envelope.replyTo, key: message.key,
                                                          digest: envelope.digest, type: envelope.type, processedAt: now)
                outcome.commands.append(CommandCount(envelope.type, .rejected))
                logger.info("rejected a command", metadata: ["command_id": "\(envelope.commandID)", "code": "\(error.code.rawValue)"])

            case .command(let command, let message):
                // A run of commands that one set-based statement can apply together.
                let run = CommandRun.collect(startingWith: command, message, in: items, from: index, answered: stored)
                if run.count > 1 {
                    let start = ContinuousClock.now
                    let results = try await run.apply(on: connection, logger: logger)
                    let durationMS = (ContinuousClock.now - start).milliseconds / Double(run.count)
                    for ((runCommand, runMessage), result) in zip(run.commands, results) {
                        try answer(runCommand, runMessage, result, durationMS: durationMS)
                    }
                    index += run.count - 1
                    continue
                }
                let start = ContinuousClock.now
                let result: Result<CommandAnswer, OperationError>
                do {
                    try command.validate()
                    result = .success(try await command.operation.answer(on: connection, logger: logger))
                } catch let error as OperationError {
                    result = .failure(error)
                }
                try answer(command, message, result, durationMS: (ContinuousClock.now - start).milliseconds)
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

    /// A command whose own transaction kept failing on a database error: answered `rejected`
    /// (`invalid_argument` when the data was at fault, `database_error` otherwise) in a transaction
    /// of its own, so it never blocks its partition. What is not a command is dead-lettered, and
    /// so is a command whose refusal cannot be stored either.
    func answerDatabaseFault(_ item: Decoded, error: any Error, fault: DatabaseFault, logger: Logger) async throws -> Outcome {
        let reason = DatabaseFault.describe(error)
        let deadLetter = Decoded.deadLetter(code: "database_refused", reason: reason, item.message)
        guard case .command(let command, let message) = item else {
            return try await database.transaction(logger: logger) { connection in
                try await apply([deadLetter], on: connection, logger: logger)
            }
        }
        let refusal = fault == .command
            ? OperationError(.invalidArgument, "the database refused the command: \(reason)")
            : OperationError(.databaseError, "the database failed on the command \(maxAttempts) times: \(reason)")
        logger.error("command failed on a database error", metadata: ["command_id": "\(command.envelope.commandID)", "error": "\(reason)"])
        do {
            return try await database.transaction(logger: logger) { connection in
                try await apply([.rejected(command.envelope, refusal, message)], on: connection, logger: logger)
            }
        } catch let second where DatabaseFault(second) != .outage {
            return try await database.transaction(logger: logger) { connection in
                try await apply([deadLetter], on: connection, logger: logger)
            }
        }
    }
}

extension CommandBatchProcessor.Decoded {
    /// The envelope of a message whose command id is claimed and stored: nil for dead letters
    /// and refusals.
    var envelope: CommandEnvelope? {
        switch self {
        case .command(let command, _): command.envelope
        case .rejected(let envelope, _, _): envelope
        case .refused, .deadLetter: nil
        }
    }

    var message: IncomingCommand {
        switch self {
        case .command(_, let message), .rejected(_, _, let message), .refused(_, _, let message), .deadLetter(_, _, let message): message
        }
    }
}
