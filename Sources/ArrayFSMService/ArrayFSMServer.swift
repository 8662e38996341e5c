import ArrayFSM
import Kafka
import Logging
import ServiceLifecycle
import Synchronization

/// `arrayfsm serve` as one service: the command consumer and the outbox relay, with a graceful
/// shutdown that stops fetching, finishes the batch in hand, commits its offsets, leaves the
/// group, publishes what is left in the outbox, and flushes the producer — the last two within
/// ``shutdownTimeout``.
public final class ArrayFSMServer: Service, Sendable {
    public let consumer: CommandConsumer
    public let relay: OutboxRelay
    /// What `GET /ready` answers from.
    public let readiness: Readiness
    let producer: KafkaProducer
    let logger: Logger
    let metrics: ServiceMetrics?
    /// How long publishing what is left in the outbox and flushing the producer may take at shutdown.
    let shutdownTimeout: Duration
    /// How often the database is probed, and how long one probe may take before it counts as unreachable.
    let probeInterval: Duration
    let probeTimeout: Duration
    private let stopping = Atomic<Bool>(false)

    /// - Parameters:
    ///   - readyRelayStall: no relay progress for this long, with rows waiting, makes the server
    ///     not ready; nil: never.
    ///   - shutdownTimeout: the bound of the shutdown drain; past it ``run()`` throws
    ///     ``ShutdownTimedOut`` and the rows left stay in the outbox for the next relay.
    public init(consumer: CommandConsumer, relay: OutboxRelay, producer: KafkaProducer, metrics: ServiceMetrics? = nil,
                readyRelayStall: Duration? = .seconds(60), shutdownTimeout: Duration = .seconds(30),
                probeInterval: Duration = .seconds(1), probeTimeout: Duration = .seconds(5), logger: Logger) {
        self.metrics = metrics
        self.consumer = consumer
        self.relay = relay
        self.producer = producer
        self.shutdownTimeout = shutdownTimeout
        self.probeInterval = probeInterval
        self.probeTimeout = probeTimeout
        self.logger = logger
        readiness = Readiness(
            database: OutageLog(started: "database unreachable", ended: "database reachable again", logger: logger),
            relay: relay.progress, relayStallLimit: readyRelayStall, producer: { [relay] in relay.producer })
    }

    /// Whether the server is ready (see ``Readiness``).
    public var isReady: Bool { readiness.isReady }

    /// Asks the server to stop as on SIGTERM.
    public func stop() {
        beginStopping()
    }

    /// Stops fetching after the batch in hand; readiness ends at once.
    func beginStopping() {
        stopping.store(true, ordering: .relaxed)
        readiness.setConsuming(false)
    }

    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { [self] in
                    do {
                        try await relay.run()
                    } catch {
                        // Without a relay nothing is published: stop consuming (the batch in hand
                        // finishes and commits; its events wait in the outbox) and fail, so the
                        // supervisor starts a new process with a new producer. waitForAll rethrows it.
                        beginStopping()
                        throw error
                    }
                }
                if let metrics {
                    group.addTask { [self] in await sampleGauges(metrics) }
                }
                group.addTask { [self] in await watchDatabase() }
                readiness.setConsuming(!stopping.load(ordering: .relaxed))
                do {
                    try await consumer.run(until: { [self] in self.stopping.load(ordering: .relaxed) })
                } catch {
                    group.cancelAll()
                    throw error
                }
                // Stop the relay loop first: a round in flight holds the relay lock, and drain()
                // must not mistake that for an empty outbox.
                group.cancelAll()
                do {
                    try await group.waitForAll()
                } catch {
                    await relay.producer.close()  // failed for good: nothing more will be delivered
                    throw error
                }
                logger.info("consumer closed; publishing what is left in the outbox")
                let drained = try await withinTimeLimit(shutdownTimeout) { [relay] in
                    let published = try await relay.drain()
                    // The relay's producer now: it replaces its own after a gap-less guarantee failure.
                    try? await relay.producer.flush(timeout: .seconds(10))
                    return published
                }
                guard let published = drained else {
                    // Not closing the producer: close() flushes, which is what did not finish.
                    // The rows stay in the outbox; the next relay publishes them (same event ids).
                    throw ShutdownTimedOut(timeout: shutdownTimeout, eventsLeft: await outboxDepth())
                }
                await relay.producer.close()
                logger.info("stopped cleanly", metadata: ["published_at_shutdown": "\(published)"])
            }
        } onGracefulShutdown: { [self] in
            self.logger.info("graceful shutdown: finishing the batch in hand")
            self.beginStopping()
        }
    }

    /// The shutdown drain did not finish within its timeout: serve exits non-zero, naming what is
    /// left. Nothing is lost: the rows stay in the outbox for the next relay.
    public struct ShutdownTimedOut: Error, CustomStringConvertible {
        /// The timeout that passed.
        public var timeout: Duration
        /// Events still in the outbox (every instance's); nil when the database did not answer.
        public var eventsLeft: Int?

        public var description: String {
            let left = eventsLeft.map { "\($0) events" } ?? "events (how many: the database did not answer)"
            return "shutdown timed out after \(OutageLog.seconds(timeout)) with \(left) still in the outbox; the next instance publishes them"
        }
    }

    /// Rows in the outbox, or nil when the database does not answer within the probe timeout.
    func outboxDepth() async -> Int? {
        try? await withinTimeLimit(probeTimeout) { [relay, logger] in
            try await relay.database.client.withConnection { try await Outbox.depth(on: $0, logger: logger) }
        } ?? nil
    }

    /// Probes the database every ``probeInterval`` for readiness: unreachable from the first
    /// probe that fails or goes unanswered for ``probeTimeout``, until one is answered. Logs
    /// each outage once as it starts and once as it ends.
    func watchDatabase() async {
        struct Unanswered: Error, CustomStringConvertible {
            var timeout: Duration
            var description: String { "no answer within \(OutageLog.seconds(timeout))" }
        }
        while !Task.isCancelled {
            do {
                let answered = try await withinTimeLimit(probeTimeout) { [relay, logger] in
                    for try await _ in try await relay.database.client.query("SELECT 1", logger: logger) {}
                    return true
                }
                if answered == nil { throw Unanswered(timeout: probeTimeout) }
                readiness.database.succeeded()
            } catch {
                if Task.isCancelled { return }
                readiness.database.failed(error)
            }
            try? await Task.sleep(for: probeInterval)
        }
    }

    /// Every 5 seconds: consumer lag, outbox depth and parked rows, and what the relay counted
    /// since the last sample.
    func sampleGauges(_ metrics: ServiceMetrics) async {
        var last = RelayCounts()
        while !Task.isCancelled {
            // Guarded like the relay's own steps: the group waits for this task at shutdown.
            let counts = try? await relay.watchdog.guarding("outbox depth sample", logger: logger) {
                try await relay.database.client.withConnection { connection in
                    try await Outbox.counts(on: connection, logger: logger)
                }
            }
            let now = RelayCounts(relay)
            metrics.sample(consumerLag: consumer.lag, outboxDepth: counts?.waiting, parkedRows: counts?.parked,
                           publishedSinceLast: now.published - last.published,
                           failuresSinceLast: now.failures - last.failures, parkedSinceLast: now.parked - last.parked)
            last = now
            try? await Task.sleep(for: .seconds(5))
        }
    }

    /// The relay's counters at one moment.
    struct RelayCounts {
        var published = 0
        var failures = 0
        var parked = 0

        init() {}

        init(_ relay: OutboxRelay) {
            published = relay.published.load(ordering: .relaxed)
            failures = relay.deliveryFailures.load(ordering: .relaxed)
            parked = relay.parked.load(ordering: .relaxed)
        }
    }
}
