// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
import PostgresNIO

/// When and how often a transaction that lost a lock race is run again.
///
/// PostgreSQL aborts one side of a deadlock (40P01) or a serialization conflict (40001); the
/// transaction did nothing, so running it again is safe. Jobmon retries 5 times with 2–32 ms;
/// so does arrayfsm, with jitter so that two losers do not collide again.
public struct RetryPolicy: Sendable, Hashable {
    /// Attempts in all, the first included.
    public var maxAttempts: Int
    /// Delay before the first retry; doubled each time.
    public var initialDelay: Duration
    public var maxDelay: Duration

    public init(maxAttempts: Int = 6, initialDelay: Duration = .milliseconds(2), maxDelay: Duration = .milliseconds(32)) {
        precondition(maxAttempts >= 1, "a transaction needs at least one attempt")
        self.maxAttempts = maxAttempts
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
    }

    /// SQLSTATEs after which the whole transaction may simply run again.
    static let retryableStates: Set<String> = [
        "40001",  // serialization_failure
        "40P01",  // deadlock_detected
        "55P03",  // lock_not_available (lock_timeout)
    ]

    /// Whether `error` means "run the transaction again".
    public static func isRetryable(_ error: any Error) -> Bool {
        guard let error = error as? PSQLError, let state = error.serverInfo?[.sqlState] else { return false }
        return retryableStates.contains(state)
    }

    /// The delay before retry number `retry` (1-based), with up to 50% jitter.
    func delay(beforeRetry retry: Int) -> Duration {
        var delay = initialDelay
        for _ in 1..<max(retry, 1) where delay < maxDelay { delay *= 2 }
        delay = min(delay, maxDelay)
        return delay * Double.random(in: 0.5...1.0)
    }
}
