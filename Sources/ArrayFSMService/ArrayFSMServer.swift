import ArrayFSM
import Kafka
import Logging
import ServiceLifecycle
import Synchronization

/// `arrayfsm serve` as one service: the command consumer and the outbox relay, with a graceful
/// shutdown that stops fetching, finishes the batch in hand, commits its offsets, leaves the
/// group, publishes what is left in the outbox, and flushes the producer.
public final class ArrayFSMServer: Service, Sendable {
    public let consumer: CommandConsumer
    public let relay: OutboxRelay
    let producer: KafkaProducer
    let logger: Logger
    let metrics: ServiceMetrics?
    private let stopping = Atomic<Bool>(false)
    private let ready = Atomic<Bool>(false)

    public init(consumer: CommandConsumer, relay: OutboxRelay, producer: KafkaProducer, metrics: ServiceMetrics? = nil, logger: Logger) {
        self.metrics = metrics
        self.consumer = consumer
        self.relay = relay
        self.producer = producer
        self.logger = logger
    }

    /// Whether the server is consuming (for the readiness probe).
    public var isReady: Bool { ready.load(ordering: .relaxed) && !stopping.load(ordering: .relaxed) }

    /// Asks the server to stop as on SIGTERM.
    public func stop() {
        stopping.store(true, ordering: .relaxed)
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
                        stopping.store(true, ordering: .relaxed)
                        throw error
                    }
                }
                if let metrics {
                    group.addTask { [self] in await sampleGauges(metrics) }
                }
                ready.store(true, ordering: .relaxed)
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
                let published = try await relay.drain()
                // The relay's producer now: it replaces its own after a gap-less guarantee failure.
                try? await relay.producer.flush(timeout: .seconds(10))
                await relay.producer.close()
                logger.info("stopped cleanly", metadata: ["published_at_shutdown": "\(published)"])
            }
        } onGracefulShutdown: { [self] in
            self.logger.info("graceful shutdown: finishing the batch in hand")
            self.stopping.store(true, ordering: .relaxed)
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
