internal import Dispatch

/// Runs a call that blocks (flush, close, sync commit, admin waits) on a Dispatch thread, so it
/// never occupies one of Swift's few cooperative-pool threads.
func blockingCall<Result: Sendable>(_ body: @escaping @Sendable () -> Result) async -> Result {
    await withCheckedContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(returning: body()) }
    }
}
