// ArrayFSMService: the relay's producer as a service of serve's group, so it closes after the relay stops.
import Kafka
import ServiceLifecycle

/// Keeps the relay's producer open until the group shuts down past the relay (which has drained
/// the outbox by then, or given up), then flushes what is in flight and closes it, bounded by
/// the producer's close timeout. The relay replaces its producer after a gap-less guarantee
/// failure: this closes the one in use at the end.
struct RelayProducerService: Service {
    let relay: OutboxRelay

    func run() async {
        try? await gracefulShutdown()
        await relay.producer.close(timeout: relay.gaveUpDraining.load(ordering: .relaxed) ? .zero : .seconds(10))
    }
}
