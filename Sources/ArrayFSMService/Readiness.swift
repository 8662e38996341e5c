// ArrayFSMService — the processor: command batches from Kafka, one transaction each, the outbox
// and its relay, readiness and metrics. Uses ArrayFSM for the domain and Kafka for the wire.
import Kafka
import Synchronization

/// Whether `serve` can do its work now (`GET /ready`), from every condition that says it cannot:
/// not consuming (starting, or shutting down), the database unreachable, the outbox relay
/// stalled with rows waiting, the relay's producer failed for good.
///
/// Liveness is not here: `/health` answers while the process runs; a supervisor restarts a
/// process that is stuck (the watchdog exits it), not one that is waiting for its dependencies.
public final class Readiness: Sendable {
    /// A reason for not being ready.
    public enum Obstacle: Sendable, Equatable, CustomStringConvertible {
        /// Before the consumer starts, and from the start of shutdown on.
        case notConsuming
        /// The database has not answered the probe for this long.
        case databaseUnreachable(for: Duration)
        /// The relay has not published (nor found the outbox empty) for this long.
        case relayStalled(for: Duration)
        /// The relay's producer failed for good; only a new process delivers again.
        case producerFailed(String)

        public var description: String {
            switch self {
            case .notConsuming: "not consuming"
            case .databaseUnreachable(let duration): "database unreachable for \(OutageLog.seconds(duration))"
            case .relayStalled(let duration): "outbox relay made no progress for \(OutageLog.seconds(duration))"
            case .producerFailed(let error): "producer failed for good: \(error)"
            }
        }
    }

    let database: OutageLog
    let relay: RelayProgress
    /// How long the relay may make no progress before it counts as stalled; nil: never.
    let relayStallLimit: Duration?
    /// The relay's producer now (the relay replaces its own after a gap-less guarantee failure).
    let producer: @Sendable () -> KafkaProducer
    private let consuming = Atomic<Bool>(false)

    /// - Parameters:
    ///   - database: the database probe's outages.
    ///   - relay: the outbox relay's progress.
    ///   - relayStallLimit: no relay progress for this long makes serve not ready; nil: never.
    ///   - producer: the relay's producer (a fatal error there makes serve not ready for good).
    public init(database: OutageLog, relay: RelayProgress, relayStallLimit: Duration?, producer: @escaping @Sendable () -> KafkaProducer) {
        self.database = database
        self.relay = relay
        self.relayStallLimit = relayStallLimit
        self.producer = producer
    }

    /// Marks the consumer as running (true) or as stopping or stopped (false).
    public func setConsuming(_ value: Bool) {
        consuming.store(value, ordering: .relaxed)
    }

    /// What keeps serve from being ready now; empty: ready.
    public var obstacles: [Obstacle] {
        var obstacles: [Obstacle] = []
        if !consuming.load(ordering: .relaxed) { obstacles.append(.notConsuming) }
        if let since = database.since { obstacles.append(.databaseUnreachable(for: ContinuousClock.now - since)) }
        if let relayStallLimit, relay.sinceLast > relayStallLimit { obstacles.append(.relayStalled(for: relay.sinceLast)) }
        if let fatal = producer().currentFatalError { obstacles.append(.producerFailed("\(fatal)")) }
        return obstacles
    }

    /// Whether nothing keeps serve from being ready.
    public var isReady: Bool { obstacles.isEmpty }
}
