// ArrayFSMService: the sampled metrics (lag, outbox depth, parked rows, relay counts), as a service of serve's group.
import ArrayFSM
import Logging
import ServiceLifecycle

/// Every ``interval``: consumer lag, outbox depth and parked rows, and what the relay counted
/// since the last sample.
struct GaugeSampler: Service {
    let metrics: ServiceMetrics
    let consumer: CommandConsumer
    let relay: OutboxRelay
    var interval = Duration.seconds(5)
    let logger: Logger

    func run() async {
        await cancelWhenGracefulShutdown { [self] in await sampleUntilCancelled() }
    }

    func sampleUntilCancelled() async {
        var last = RelayCounts()
        while !Task.isCancelled {
            // Guarded like the relay's own steps: a sample stuck on the database is a stuck process.
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
            try? await Task.sleep(for: interval)
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
