// ArrayFSMService — the processor: command batches from Kafka, one transaction each, the outbox
// and its relay, readiness and metrics. Uses ArrayFSM for the domain and Kafka for the wire.
import Synchronization

/// When the outbox relay last did its job: published rows, found the outbox empty, or found
/// another instance's relay leading (that relay's own readiness speaks for it).
///
/// Not advancing for long means rows wait and nothing publishes them (the broker refuses or is
/// gone, the database does not answer the relay): ``Readiness`` reports the relay stalled then.
public final class RelayProgress: Sendable {
    private let last = Mutex(ContinuousClock.now)

    /// Starts the clock now: a relay that never gets going counts as stalled after the limit too.
    public init() {}

    /// The relay did its job just now.
    public func advanced() {
        last.withLock { $0 = .now }
    }

    /// The relay delivered `count` rows just now; no rows is no progress.
    func published(_ count: Int) {
        if count > 0 { advanced() }
    }

    /// Time since the relay last did its job.
    public var sinceLast: Duration {
        ContinuousClock.now - last.withLock { $0 }
    }
}
