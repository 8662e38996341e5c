// ArrayFSMClient — the scheduler's side of the wire contract: commands sent over Kafka, typed
// answers read from a private reply topic. Knows no SQL and nothing of serve's internals.
import Foundation
import Kafka
import Logging
import ServiceLifecycle
import Synchronization

/// A scheduler's connection to arrayfsm: sends commands and hands back serve's answers.
///
/// The client has a private reply topic, ``Configuration/replyTopic`` (created if missing), and
/// names it in every command's `reply_to`, so it reads only its own answers. ``run()`` reads that
/// topic and settles the waiting calls (putting split results back together), sends again a call
/// whose attempt timed out — the same bytes with the same `command_id`, which serve answers with
/// the original result and never applies twice — renews a producer that failed for good, and
/// fails calls whose deadline passed with ``CommandTimeout``.
///
/// Commands go out in the order they are submitted, so one array's commands are applied in that
/// order. ``submit(_:)`` sends and returns at once (pipelining); the typed methods
/// (``addArray(workflowID:taskTemplateVersionID:name:maxConcurrentlyRunning:)`` and the rest)
/// send one command and wait for its typed result.
public final class ArrayFSMClient: Service, Sendable {
    /// Where the client sends and reads, and how long it waits.
    public struct Configuration: Sendable {
        public var bootstrapServers: String
        /// serve's commands topic.
        public var commandsTopic = "arrayfsm.commands"
        /// serve's allowed reply-topic prefix (`--reply-topic-prefix`).
        public var replyTopicPrefix = "arrayfsm.replies."
        /// Names the reply topic: a new id by default, so each client has its own.
        public var clientID = UUID().uuidString.lowercased()
        /// How long to wait for an answer before sending the command again.
        public var attemptTimeout: Duration = .seconds(5)
        /// How long a call waits in all before it fails with ``CommandTimeout``.
        public var deadline: Duration = .seconds(60)
        /// librdkafka properties for the producer and the reply reader (security settings, …).
        public var kafkaProperties: [String: String] = [:]

        public init(bootstrapServers: String) { self.bootstrapServers = bootstrapServers }

        /// The topic this client's answers come to.
        public var replyTopic: String { replyTopicPrefix + clientID }
    }

    public let configuration: Configuration
    private let producer: Mutex<KafkaProducer>
    private let consumer: KafkaConsumer
    private let calls = Mutex<Calls>(Calls())
    private let logger: Logger

    /// The waiting calls, and when the earliest of them needs attention.
    private struct Calls {
        var byID: [String: Call] = [:]
        var nextDue: ContinuousClock.Instant?
        var stopped = false
        var nextSequence: UInt64 = 0
    }

    private struct Call {
        var type: String
        var message: KafkaOutgoingMessage
        var slot: PendingAnswer
        var started: ContinuousClock.Instant
        var deadline: ContinuousClock.Instant
        var nextSend: ContinuousClock.Instant
        var attempts = 1
        var parts: [Int: [UInt8]] = [:]
        /// Submission order: what a new producer sends again goes out in it.
        var sequence: UInt64 = 0
        /// The broker acknowledged a copy of the command.
        var acknowledged = false

        var due: ContinuousClock.Instant { min(nextSend, deadline) }
    }

    /// Connects: creates the reply topic unless it exists and starts reading it from its end.
    /// Answers are read only while ``run()`` runs.
    public init(configuration: Configuration, logger: Logger = Logger(label: "arrayfsm.client")) async throws {
        self.configuration = configuration
        self.logger = logger
        producer = Mutex(try Self.makeProducer(configuration, logger: logger))
        consumer = try KafkaConsumer(
            configuration: KafkaConfiguration(
                bootstrapServers: configuration.bootstrapServers, clientID: "arrayfsm-client",
                groupID: "arrayfsm-client-\(configuration.clientID)",
                properties: [
                    "enable.auto.commit": "false",
                    // Where the broker creates topics on first use, asking for the reply topic's metadata creates it.
                    "allow.auto.create.topics": "true",
                    // Answers are small and awaited: a fetch returns as soon as one is there, or after 5 ms.
                    "fetch.wait.max.ms": "5",
                ].merging(configuration.kafkaProperties) { $1 }),
            logger: logger)
        try await createReplyTopic()
        // From the end as it is now: an answer written before a lazily resolved "end" would be skipped.
        var offsets: [KafkaTopicPartition: Int64] = [:]
        for partition in try await consumer.partitions(of: configuration.replyTopic) {
            let topicPartition = KafkaTopicPartition(topic: configuration.replyTopic, partition: partition)
            offsets[topicPartition] = try await consumer.watermarks(of: topicPartition).high
        }
        try consumer.assign(offsets)
    }

    /// Runs `body` with a client whose ``run()`` runs meanwhile; stops it afterwards.
    public static func withClient<Value: Sendable>(
        configuration: Configuration, logger: Logger = Logger(label: "arrayfsm.client"),
        _ body: (ArrayFSMClient) async throws -> Value
    ) async throws -> Value {
        let client = try await ArrayFSMClient(configuration: configuration, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await client.run() }
            do {
                let value = try await body(client)
                group.cancelAll()
                try await group.waitForAll()
                return value
            } catch {
                group.cancelAll()
                try? await group.waitForAll()
                throw error
            }
        }
    }

    /// Sends `commands` in order and returns a handle per command to await its answer.
    ///
    /// Commands are queued in the order submitted, and the producer keeps that order per
    /// partition, so one array's commands are applied in it. A command the broker does not take
    /// is sent again shortly; when the producer failed for good, a new one sends every command
    /// not yet acknowledged, in submission order. Only commands in flight at such a failure may
    /// then land after commands submitted later: pass `acknowledged: true` to return only once
    /// the broker has acknowledged every command of this call, so that the next call's go out
    /// after them whatever happens. A command the broker refuses for good (too large, …) is then
    /// settled at once with that error.
    /// - Throws: ``ArrayFSMClientStopped`` once ``run()`` has ended. A command id already waiting
    ///   is a programming error (precondition).
    public func submit(_ commands: [ArrayCommand], deadline: Duration? = nil, acknowledged: Bool = false) async throws -> [PendingAnswer] {
        let now = ContinuousClock.now
        let deadline = now + (deadline ?? configuration.deadline)
        let nextSend = min(now + configuration.attemptTimeout, deadline)
        var entries = commands.map { command in
            Call(type: command.type, message: message(for: command), slot: PendingAnswer(commandID: command.id),
                 started: now, deadline: deadline, nextSend: nextSend)
        }
        try calls.withLock { calls in
            if calls.stopped { throw ArrayFSMClientStopped(commandID: commands.first?.id ?? "") }
            for index in entries.indices {
                let id = commands[index].id
                precondition(calls.byID[id] == nil, "a call with command id \(id) is already waiting")
                entries[index].sequence = calls.nextSequence
                calls.nextSequence += 1
                calls.byID[id] = entries[index]
            }
            calls.nextDue = min(calls.nextDue ?? nextSend, nextSend)
        }
        let ids = commands.map(\.id)
        guard acknowledged else {
            try await produce(entries.map(\.message), ids: ids)
            return entries.map(\.slot)
        }
        var unsent = Array(entries.indices)
        for renewal in 0... {
            var current = producer.withLock { $0 }
            if current.currentFatalError != nil { current = try renewProducer(replacing: current) }
            let report: KafkaDeliveryReport
            do {
                report = try await current.send(unsent.map { entries[$0].message })
            } catch {
                report = KafkaDeliveryReport(delivered: 0, failed: unsent.indices.map { .init(index: $0, error: error) })
            }
            let failed = report.failed.sorted { $0.index < $1.index }
            let failedIndices = Set(failed.map(\.index))
            markAcknowledged(unsent.indices.filter { !failedIndices.contains($0) }.map { ids[unsent[$0]] })
            if failed.isEmpty { break }
            if current.currentFatalError != nil, renewal < 5 {
                unsent = failed.map { unsent[$0.index] }
                continue
            }
            for failure in failed {
                let id = ids[unsent[failure.index]]
                calls.withLock { _ = $0.byID.removeValue(forKey: id) }
                entries[unsent[failure.index]].slot.complete(.failure(failure.error))
            }
            break
        }
        return entries.map(\.slot)
    }

    /// Sends one command now; see ``submit(_:deadline:acknowledged:)-([ArrayCommand],_,_)``.
    public func submit(_ command: ArrayCommand, deadline: Duration? = nil, acknowledged: Bool = false) async throws -> PendingAnswer {
        try await submit([command], deadline: deadline, acknowledged: acknowledged)[0]
    }

    /// Sends one command and waits for serve's answer (which may be `rejected`).
    public func send(_ command: ArrayCommand, deadline: Duration? = nil) async throws -> CommandAnswer {
        try await submit(command, deadline: deadline).answer()
    }

    /// Sends one command and waits for its typed result.
    /// - Throws: ``CommandRejected``, ``CommandTimeout``, ``ArrayFSMClientStopped``.
    public func call<Result: CommandResult>(_ command: ArrayCommand, as _: Result.Type = Result.self,
                                            deadline: Duration? = nil) async throws -> Result {
        try await send(command, deadline: deadline).result(as: Result.self)
    }

    /// Reads answers and keeps the waiting calls going until cancelled or shut down gracefully;
    /// then fails the calls still waiting with ``ArrayFSMClientStopped`` and closes.
    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { try await self.readAnswers() }
        } catch is CancellationError {}
        let waiting = calls.withLock { calls -> [String: Call] in
            calls.stopped = true
            let waiting = calls.byID
            calls.byID = [:]
            return waiting
        }
        for (id, call) in waiting { call.slot.complete(.failure(ArrayFSMClientStopped(commandID: id))) }
        await consumer.close()
        await producer.withLock { $0 }.close(timeout: .seconds(5))
    }

    private func readAnswers() async throws {
        while !Task.isCancelled {
            let polled: KafkaPollResult
            do {
                polled = try await consumer.poll(maxMessages: 1000, timeout: .milliseconds(10))
            } catch {
                logger.warning("reading the reply topic: \(error)")
                try await Task.sleep(for: .milliseconds(100))
                continue
            }
            for message in polled.messages {
                guard let value = message.value else { continue }
                settle(value, publishedAt: message.timestampMilliseconds)
            }
            try await attendToDueCalls(now: .now)
        }
    }

    /// The event's call, if it is waiting: stores the part; settles the call once every part is there.
    private func settle(_ value: [UInt8], publishedAt: Int64?) {
        guard let header = try? JSONDecoder().decode(EventHeader.self, from: Data(value)) else { return }
        let finished = calls.withLock { calls -> Call? in
            // A late copy, or an answer to a call already settled.
            guard var call = calls.byID[header.commandID] else { return nil }
            call.parts[header.part ?? 1] = value
            guard call.parts.count >= (header.parts ?? 1) else {
                calls.byID[header.commandID] = call
                return nil
            }
            calls.byID[header.commandID] = nil
            return call
        }
        guard let call = finished else { return }
        let rejection = header.status == "ok" ? nil : CommandRejected(
            code: header.error?.code ?? "unknown", message: header.error?.message ?? "", commandID: header.commandID, type: call.type)
        let processedAt = header.processedAt.flatMap { try? Date($0, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true)) }
        call.slot.complete(.success(CommandAnswer(
            events: call.parts.keys.sorted().map { call.parts[$0]! }, commandID: header.commandID, type: call.type,
            isOK: rejection == nil, rejection: rejection, processedAt: processedAt, publishedAtMilliseconds: publishedAt,
            attempts: call.attempts, sentAt: call.started, receivedAt: .now)))
    }

    /// Fails the calls past their deadline and sends again those whose attempt timed out.
    private func attendToDueCalls(now: ContinuousClock.Instant) async throws {
        let current = producer.withLock { $0 }
        if current.currentFatalError != nil {
            _ = try renewProducer(replacing: current)
            let unacknowledged = calls.withLock { calls in
                calls.byID.filter { !$0.value.acknowledged }.sorted { $0.value.sequence < $1.value.sequence }.map { ($0.key, $0.value.message) }
            }
            logger.debug("sending \(unacknowledged.count) unacknowledged command(s) on the new producer, in order")
            try await produce(unacknowledged.map(\.1), ids: unacknowledged.map(\.0))
        }
        let (expired, resend) = calls.withLock { calls -> ([(String, Call)], [(String, KafkaOutgoingMessage)]) in
            guard let due = calls.nextDue, due <= now else { return ([], []) }
            var expired: [(String, Call)] = []
            var resend: [(String, KafkaOutgoingMessage)] = []
            var nextDue: ContinuousClock.Instant?
            for (id, entry) in calls.byID where entry.due <= now {
                var call = entry
                if call.deadline <= now {
                    calls.byID[id] = nil
                    expired.append((id, call))
                    continue
                }
                call.attempts += 1
                call.nextSend = min(now + configuration.attemptTimeout, call.deadline)
                calls.byID[id] = call
                resend.append((id, call.message))
            }
            for call in calls.byID.values { nextDue = min(nextDue ?? call.due, call.due) }
            calls.nextDue = nextDue
            return (expired, resend)
        }
        for (id, call) in expired {
            call.slot.complete(.failure(CommandTimeout(commandID: id, type: call.type, attempts: call.attempts, waited: now - call.started)))
        }
        guard !resend.isEmpty else { return }
        logger.debug("sending \(resend.count) command(s) again with their ids")
        try await produce(resend.map(\.1), ids: resend.map(\.0))
    }

    /// Queues messages; one the broker does not take is sent again shortly (on a new producer,
    /// by ``attendToDueCalls(now:)``, when this one failed for good).
    private func produce(_ messages: [KafkaOutgoingMessage], ids: [String]) async throws {
        let current = producer.withLock { $0 }
        do {
            try await current.enqueue(messages) { [weak self] report in
                guard let self else { return }
                let failed = Set(report.failed.map(\.index))
                self.markAcknowledged(ids.indices.filter { !failed.contains($0) }.map { ids[$0] })
                if let failure = report.failures.first { self.retrySoon(report.failed.map { ids[$0.index] }, after: failure) }
            }
        } catch {
            retrySoon(ids, after: error)
        }
    }

    private func markAcknowledged(_ ids: [String]) {
        calls.withLock { calls in
            for id in ids { calls.byID[id]?.acknowledged = true }
        }
    }

    private func retrySoon(_ ids: [String], after error: any Error) {
        logger.debug("\(ids.count) command(s) not delivered (\(error)); sending again shortly")
        let soon = ContinuousClock.now + .milliseconds(100)
        calls.withLock { calls in
            for id in ids {
                guard var call = calls.byID[id] else { continue }
                call.nextSend = min(call.nextSend, soon)
                calls.byID[id] = call
                let due = call.due
                calls.nextDue = min(calls.nextDue ?? due, due)
            }
        }
    }

    private func renewProducer(replacing failed: KafkaProducer) throws -> KafkaProducer {
        try producer.withLock { current in
            guard current === failed else { return current }
            logger.warning("the producer failed for good (\(failed.currentFatalError.map { "\($0)" } ?? "")); starting a new one")
            current = try Self.makeProducer(configuration, logger: logger)
            return current
        }
    }

    private static func makeProducer(_ configuration: Configuration, logger: Logger) throws -> KafkaProducer {
        try KafkaProducer(
            configuration: KafkaConfiguration(
                bootstrapServers: configuration.bootstrapServers, clientID: "arrayfsm-client",
                properties: ["linger.ms": "1", "socket.nagle.disable": "true"].merging(configuration.kafkaProperties) { $1 }),
            logger: logger)
    }

    /// The command's envelope: encoded once, so every re-send is byte-identical.
    private func message(for command: ArrayCommand) -> KafkaOutgoingMessage {
        func quoted(_ text: String) -> String { String(decoding: try! JSONEncoder().encode(text), as: UTF8.self) }
        let issuedAt = Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
        let head = #"{"command_id":\#(quoted(command.id)),"type":\#(quoted(command.type)),"version":1,"issued_at":"\#(issuedAt)","reply_to":\#(quoted(configuration.replyTopic)),"payload":"#
        return KafkaOutgoingMessage(topic: configuration.commandsTopic, partition: command.partition, key: command.key,
                                    value: Array(head.utf8) + command.payload + [UInt8(ascii: "}")])
    }

    private func createReplyTopic() async throws {
        let topic = configuration.replyTopic
        do {
            let admin = try KafkaAdmin(
                configuration: KafkaConfiguration(bootstrapServers: configuration.bootstrapServers, properties: configuration.kafkaProperties),
                logger: logger)
            try await admin.createTopicIfMissing(topic, partitions: 1, timeout: .seconds(2))
        } catch {
            // Brokers without CreateTopics (librdkafka's mock cluster) create it on first use: below.
            logger.debug("CreateTopics \(topic): \(error); relying on the broker's auto-creation")
        }
        // An auto-created topic may take a metadata round or two to appear.
        let giveUp = ContinuousClock.now + .seconds(10)
        var lastError: KafkaError?
        while ContinuousClock.now < giveUp {
            do {
                if try await !consumer.partitions(of: topic, timeout: .seconds(2)).isEmpty { return }
            } catch {
                lastError = error
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw KafkaError(code: -1, message: "could not create the reply topic \(topic)\(lastError.map { ": \($0)" } ?? "")")
    }

    /// What the client reads of a result event to settle its call.
    private struct EventHeader: Decodable {
        struct Failure: Decodable {
            var code: String?
            var message: String?
        }

        var commandID: String
        var status: String
        var error: Failure?
        var part: Int?
        var parts: Int?
        var processedAt: String?

        enum CodingKeys: String, CodingKey {
            case commandID = "command_id", status, error, part, parts, processedAt = "processed_at"
        }
    }
}
