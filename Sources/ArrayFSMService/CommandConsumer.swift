// ArrayFSMService — the processor: command batches from Kafka, one transaction each, the outbox
// and its relay, readiness and metrics. Uses ArrayFSM for the domain and Kafka for the wire.
import ArrayFSM
import Foundation
import Kafka
import Logging
import ServiceLifecycle
import Synchronization

/// The consumer loop: poll a batch of commands, apply it in one transaction, then (and only then)
/// store the offsets, and wake the relay.
///
/// If the database is unreachable, the batch's partitions are rewound to its first offsets and
/// the loop retries with backoff: nothing is skipped. A rebalance is handled by the poll itself:
/// a `revoked` event ends the poll after which this loop finishes the batch it holds, stores its
/// offsets, and the next poll commits them before the partitions go.
///
/// Back-pressure: while the outbox holds more than `maxOutboxRows` rows waiting to be published
/// (the relay cannot keep up, or cannot publish at all), the loop pauses fetching from its
/// assigned partitions and keeps polling — so it stays in the group, `max.poll.interval.ms` never
/// runs out, and nothing is half-applied — and resumes once the waiting rows are down to
/// `resumeFraction` of the limit. Parked rows do not count: they are in a table of their own, so
/// they never drain by themselves, and counting them would let a few undeliverable events stop
/// all consumption until an operator steps in.
public final class CommandConsumer: Service, Sendable {
    let consumer: KafkaConsumer
    let processor: CommandBatchProcessor
    let relay: OutboxRelay?
    let topics: Topics
    let maxBatch: Int
    let maxWait: Duration
    let logger: Logger
    let observer: (any CommandObserver)?
    /// Told when consuming starts and when it stops (graceful shutdown, or an error).
    let readiness: Readiness?
    /// Guards each batch, and the fetching of waiting commands; nil: neither is watched.
    let watchdog: StallWatchdog?
    /// When the last poll returned messages (or the loop started, or resumed).
    private let lastMessages = Mutex(ContinuousClock.now)
    /// Waiting outbox rows above which fetching pauses; nil: never.
    let maxOutboxRows: Int?
    /// Fetching resumes at or below this share of `maxOutboxRows`.
    let resumeFraction = 0.8
    /// How often the outbox is counted against `maxOutboxRows`.
    let outboxCheckInterval: Duration
    /// How long one count may take before the consumer polls on without it.
    let outboxCheckTimeout = Duration.seconds(5)
    private let paused = Atomic<Bool>(false)

    /// Whether fetching is paused because the outbox is over `maxOutboxRows`.
    public var isPaused: Bool { paused.load(ordering: .relaxed) }

    /// Partitions assigned to this member now (empty when it has none, or cannot tell).
    public var assignedPartitions: [KafkaTopicPartition] { (try? consumer.assignment()) ?? [] }

    /// - Parameters:
    ///   - watchdog: a batch that outlives its timeout is stuck (e.g. on a database connection that
    ///     never answers after a server restart), and so is a consumer that fetches nothing for that
    ///     long while commands wait. `serve` exits then and its supervisor restarts it: no offsets
    ///     were committed for the batch, so it is redelivered and the processed-commands table
    ///     keeps it exactly-once.
    ///   - maxOutboxRows: waiting outbox rows above which fetching pauses (needs `relay`); nil or
    ///     0: never pause.
    ///   - outboxCheckInterval: how often the outbox is counted for that.
    public init(
        consumer: KafkaConsumer, processor: CommandBatchProcessor, relay: OutboxRelay?, topics: Topics,
        maxBatch: Int = 500, maxWait: Duration = .milliseconds(20), observer: (any CommandObserver)? = nil,
        watchdog: StallWatchdog? = nil, maxOutboxRows: Int? = nil, outboxCheckInterval: Duration = .milliseconds(500),
        readiness: Readiness? = nil, logger: Logger
    ) {
        self.readiness = readiness
        self.maxOutboxRows = maxOutboxRows.flatMap { $0 > 0 ? $0 : nil }
        self.outboxCheckInterval = outboxCheckInterval
        self.watchdog = watchdog
        self.consumer = consumer
        self.processor = processor
        self.relay = relay
        self.topics = topics
        self.maxBatch = maxBatch
        self.maxWait = maxWait
        self.observer = observer
        self.logger = logger
    }

    /// Messages behind on the assigned partitions, from the latest statistics report.
    public var lag: Int64? { consumer.latestStatistics?.totalConsumerLag }

    /// As a service: consumes until the group shuts down gracefully (or the task is cancelled),
    /// finishing the batch in hand, then leaves the group cleanly (committing stored offsets).
    /// Readiness ends as soon as the shutdown starts.
    public func run() async throws {
        try await withGracefulShutdownHandler {
            defer { readiness?.setConsuming(false) }
            try await consume()
        } onGracefulShutdown: { [readiness] in
            readiness?.setConsuming(false)
        }
    }

    func consume() async throws {
        try consumer.subscribe(topics: [topics.commands])
        readiness?.setConsuming(!Task.isShuttingDownGracefully)
        let liveness = watchdog.map { watchdog in Task { await watchForStarvation(watchdog) } }
        defer { liveness?.cancel() }
        var backoff = Duration.milliseconds(100)
        let failures = OutageLog(started: "batch not applied; rewinding and retrying until one is", ended: "batches applied again", logger: logger)
        var lastTransaction = Duration.zero
        var lastOutboxCheck: ContinuousClock.Instant?
        defer { logger.info("command consumer stopped") }
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            await applyBackpressure(lastCheck: &lastOutboxCheck)
            let polled = try await gather(afterTransactionOf: lastTransaction)
            guard !polled.isEmpty else { continue }
            lastMessages.withLock { $0 = .now }
            let incoming = polled.map(IncomingCommand.init)
            let started = ContinuousClock.now
            do {
                let outcome = try await watchdog.guarding("batch", logger: logger, metadata: ["commands": "\(incoming.count)"]) {
                    try await processor.process(incoming, logger: logger)
                }
                backoff = .milliseconds(100)
                failures.succeeded()
                lastTransaction = ContinuousClock.now - started
                storeOffsets(polled)
                relay?.notify()
                let timings = outcome.timings
                logger.debug("applied a batch", metadata: [
                    "commands": "\(incoming.count)", "ms": "\(Int(lastTransaction.milliseconds))",
                    "decode_ms": "\(Int(timings.decode.milliseconds))", "operations_ms": "\(Int(timings.operations.milliseconds))",
                    "store_ms": "\(Int(timings.store.milliseconds))",
                    "rest_ms": "\(Int((lastTransaction - timings.decode - timings.operations - timings.store).milliseconds))",
                ])
                observer?.batchApplied(outcome, messages: incoming, duration: ContinuousClock.now - started)
            } catch {
                observer?.batchFailed(error)
                failures.failed(error, metadata: ["in": "\(backoff)"])
                try await rewind(polled)
                try? await cancelWhenGracefulShutdown { [backoff] in try await Task.sleep(for: backoff) }
                backoff = min(backoff * 2, .seconds(10))
            }
        }
        await consumer.close()
    }

    /// The next batch: what one poll returns (waiting up to `maxWait` for the first message, then
    /// taking what has arrived), and, when the batch promises a long transaction, the rest of the
    /// burst it came in (until `burstGap` passes without a message, or `maxWait`). A scheduler's
    /// burst reaches the first poll in parts, and without this the remainder waits for that
    /// transaction and pays for one of its own. Waiting a few milliseconds is cheap next to a long transaction, and latency is what
    /// matters for short ones: the batch promises a long one when its messages are large (many
    /// ids each) or the last transaction was long (the work is heavy, or the database slow).
    func gather(afterTransactionOf lastTransaction: Duration) async throws -> [KafkaMessage] {
        var messages: [KafkaMessage] = []
        var bytes = 0
        /// Takes a poll's messages; false when the batch must go now: nothing came, or a rebalance
        /// event ended the poll (the partitions go at the next one, so what is held is applied first).
        func take(_ polled: KafkaPollResult) -> Bool {
            for event in polled.rebalanceEvents {
                logger.info("rebalance", metadata: ["event": "\(event)"])
                // A partition assigned while paused starts fetching: pause it too.
                if case .assigned = event, isPaused { pauseFetching(true) }
            }
            messages += polled.messages
            bytes += polled.messages.reduce(0) { $0 + ($1.value?.count ?? 0) }
            return !polled.messages.isEmpty && polled.rebalanceEvents.isEmpty
        }
        guard take(try await consumer.poll(maxMessages: maxBatch, timeout: maxWait)) else { return messages }
        let deadline = ContinuousClock.now + maxWait
        while messages.count < maxBatch, bytes >= burstBytes || lastTransaction >= burstTransaction {
            let left = ContinuousClock.now.duration(to: deadline)
            guard left > .zero,
                take(try await consumer.poll(maxMessages: maxBatch - messages.count, timeout: min(burstGap, left)))
            else { break }
        }
        return messages
    }

    /// Counts the waiting outbox rows every `outboxCheckInterval` and pauses or resumes fetching.
    /// A failed count changes nothing (the database is down: the batches fail and retry anyway).
    func applyBackpressure(lastCheck: inout ContinuousClock.Instant?) async {
        guard let limit = maxOutboxRows, let relay else { return }
        let now = ContinuousClock.now
        if let lastCheck, now - lastCheck < outboxCheckInterval { return }
        lastCheck = now
        let waiting: Int
        do {
            // Bounded: a count that goes unanswered (a lease asked for while PostgreSQL stopped)
            // must not keep the consumer from polling; the watchdog still sees it if it never ends.
            let counted = try await withinTimeLimit(outboxCheckTimeout) { [watchdog, relay, logger] in
                try await watchdog.guarding("outbox size", logger: logger) {
                    try await relay.database.client.withConnection { connection in
                        try await Outbox.waiting(upTo: limit + 1, on: connection, logger: logger)
                    }
                }
            }
            guard let counted else {
                logger.warning("could not count the outbox: no answer within \(OutageLog.seconds(outboxCheckTimeout))")
                return
            }
            waiting = counted
        } catch {
            logger.warning("could not count the outbox", metadata: ["error": "\(error)"])
            return
        }
        if !isPaused && waiting > limit {
            logger.warning("the outbox is full: pausing the consumer until the relay catches up", metadata: [
                "waiting": "more than \(limit)", "resume_at": "\(Int(Double(limit) * resumeFraction))",
            ])
            pauseFetching(true)
        } else if isPaused && waiting <= Int(Double(limit) * resumeFraction) {
            logger.info("the outbox has room again: resuming the consumer", metadata: ["waiting": "\(waiting)"])
            pauseFetching(false)
        }
    }

    /// Pauses or resumes fetching from every assigned partition (the loop keeps polling either way).
    func pauseFetching(_ pause: Bool) {
        let assigned = (try? consumer.assignment()) ?? []
        do {
            if !assigned.isEmpty {
                if pause { try consumer.pause(assigned) } else { try consumer.resume(assigned) }
            }
        } catch {
            logger.warning("could not \(pause ? "pause" : "resume") the assigned partitions", metadata: ["error": "\(error)"])
        }
        if !pause { lastMessages.withLock { $0 = .now } }
        if paused.exchange(pause, ordering: .relaxed) != pause { observer?.consumerPaused(pause) }
    }

    /// A batch whose first poll brought this many bytes is a burst of large commands worth waiting for.
    let burstBytes = 64 * 1024
    /// A last transaction this long makes the next batch worth completing too.
    let burstTransaction = Duration.milliseconds(50)
    /// Silence that ends a burst. Above the mock cluster's fetch wait (5 ms in the harness and
    /// bench-serve), which spaces its answers; a real broker answers as data arrives.
    let burstGap = Duration.milliseconds(6)

    /// The other way to be stuck: assigned partitions with commands waiting, and no message
    /// fetched for `timeout` (seen once in ~8 runs of the chaos suite's PostgreSQL scenario on a
    /// starved machine: a consumer assigned everything and fetched nothing). Checks twice per
    /// `timeout`; calls the watchdog's `onStall` if commands wait past the committed offsets.
    func watchForStarvation(_ watchdog: StallWatchdog) async {
        let timeout = watchdog.timeout
        while !Task.isCancelled {
            try? await Task.sleep(for: timeout / 2)
            // Paused on purpose (the outbox is full): fetching nothing is expected.
            if isPaused { continue }
            let quiet = ContinuousClock.now - lastMessages.withLock { $0 }
            guard quiet > timeout, let assigned = try? consumer.assignment(), !assigned.isEmpty else { continue }
            guard let waiting = try? await Self.waitingCommands(consumer, on: assigned) else { continue }
            guard waiting > 0, !isPaused, ContinuousClock.now - lastMessages.withLock({ $0 }) > timeout else { continue }
            logger.critical("no command fetched while commands wait on assigned partitions; the consumer is stuck", metadata: [
                "quiet": "\(quiet)", "waiting": "\(waiting)", "partitions": "\(assigned.count)",
            ])
            watchdog.onStall(timeout)
            return
        }
    }

    /// Commands waiting on `partitions` for `consumer`'s group, from the cluster: what lies between
    /// each partition's committed offset and its high watermark (see ``waiting(committed:low:high:)``).
    /// A partition whose watermarks cannot be read counts as none.
    public static func waitingCommands(_ consumer: KafkaConsumer, on partitions: [KafkaTopicPartition]) async throws -> Int64 {
        let committed = try await consumer.committedOffsets(for: partitions)
        var total: Int64 = 0
        for partition in partitions {
            guard let (low, high) = try? await consumer.watermarks(of: partition) else { continue }
            total += waiting(committed: committed[partition], low: low, high: high)
        }
        return total
    }

    /// Commands waiting on one partition: from the committed offset to the high watermark, but
    /// never from below the low watermark. Retention deletes from the front: a consumer with no
    /// committed offset (or one retention passed) starts at the low watermark (auto.offset.reset
    /// earliest), so what was deleted is not waiting — counting it made a quiet consumer look stuck.
    public static func waiting(committed: Int64?, low: Int64, high: Int64) -> Int64 {
        max(0, high - max(committed ?? low, low))
    }

    /// Marks the batch processed. A partition revoked meanwhile fails with a state error: its
    /// messages are redelivered to the new owner, which answers them from the processed-commands table.
    func storeOffsets(_ messages: [KafkaMessage]) {
        do {
            try consumer.storeOffsets(for: messages)
        } catch {
            logger.info("offsets not stored (partition revoked?); the new owner re-reads them", metadata: ["error": "\(error)"])
        }
    }

    /// Moves each partition of the batch back to the batch's first offset there.
    func rewind(_ messages: [KafkaMessage]) async throws {
        var first: [KafkaTopicPartition: Int64] = [:]
        for message in messages {
            first[message.topicPartition] = min(first[message.topicPartition] ?? .max, message.offset)
        }
        do {
            try await consumer.seek(first)
        } catch {
            // Revoked meanwhile: the new owner starts at the committed offset, nothing is skipped.
            // Still ours: reading on would skip the unapplied batch, so stop and let the process
            // restart from the committed offsets.
            let assigned = (try? consumer.assignment()) ?? []
            if first.keys.contains(where: assigned.contains) {
                logger.critical("cannot rewind an assigned partition after a failed batch; stopping", metadata: ["error": "\(error)"])
                throw error
            }
            logger.warning("rewind failed for a revoked partition; its new owner re-reads it", metadata: ["error": "\(error)"])
        }
    }
}

/// Receives what the consumer did, for metrics.
public protocol CommandObserver: Sendable {
    func batchApplied(_ outcome: CommandBatchProcessor.Outcome, messages: [IncomingCommand], duration: Duration)
    func batchFailed(_ error: any Error)
    /// Fetching paused (true) or resumed (false) for back-pressure from the outbox.
    func consumerPaused(_ isPaused: Bool)
}

extension CommandObserver {
    public func consumerPaused(_ isPaused: Bool) {}
}

extension IncomingCommand {
    /// Copies what the processor needs out of librdkafka's buffer.
    public init(_ message: KafkaMessage) {
        self.init(
            topic: message.topic, partition: message.partition, offset: message.offset, key: message.key, value: message.value,
            headers: message.headers.map { (name: $0.name, value: $0.value) }, timestampMilliseconds: message.timestampMilliseconds)
    }
}
