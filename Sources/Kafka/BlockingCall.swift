// Kafka: where librdkafka's blocking calls run — threads of their own, never Swift's cooperative pool.
import NIOPosix

/// Threads for librdkafka's blocking calls (flush, close, synchronous commit, seek, admin and
/// metadata waits). They block for up to their timeout (seconds); on Swift's cooperative pool —
/// as many threads as cores, two here — two such calls would stall every task in the process,
/// and on Dispatch's global queues they compete with whatever else the process runs there.
enum BlockingCallPool {
    /// Eight: calls that block at the same time are few in serve (a close, a commit, a flush),
    /// more in a test process that runs many clients at once; an idle thread costs nothing.
    static let shared: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 8)
        pool.start()
        return pool
    }()
}

/// Runs a call that blocks on ``BlockingCallPool``'s threads and returns its result.
func blockingCall<Result: Sendable>(_ body: @escaping @Sendable () -> Result) async -> Result {
    await withCheckedContinuation { continuation in
        BlockingCallPool.shared.submit { state in
            // The pool is never shut down, so every item runs: `.cancelled` cannot happen.
            precondition(state == .active, "the blocking-call pool was shut down")
            continuation.resume(returning: body())
        }
    }
}
