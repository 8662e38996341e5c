// ArrayFSMService — the processor: command batches from Kafka, one transaction each, the outbox
// and its relay, readiness and metrics. Uses ArrayFSM for the domain and Kafka for the wire.
import Synchronization

/// Runs `body` in a task of its own and waits for it at most `limit`: its result, or nil when it
/// did not finish in time (the task is then cancelled and left to end on its own).
///
/// For steps that may ignore cancellation — a delivery report that never comes, a connection that
/// never answers — which a task group, waiting for all its children, would wait for too.
func withinTimeLimit<Result: Sendable>(
    _ limit: Duration, _ body: @escaping @Sendable () async throws -> Result
) async throws -> Result? {
    let work = Task { try await body() }
    // Cancelling the caller cancels the work, which then ends the wait through its result.
    let outcome: Swift.Result<Result, any Error>? = await withTaskCancellationHandler {
        await withCheckedContinuation { continuation in
            let waiting = Once(continuation)
            // A cancelled timer must not resume: cancelling it (the work finished) ends its sleep
            // early, and resuming then answered "timed out" for work that had just finished.
            let timer = Task {
                do { try await Task.sleep(for: limit) } catch { return }
                waiting.resume(returning: nil)
            }
            Task {
                let result = await work.result
                waiting.resume(returning: result)
                timer.cancel()
            }
        }
    } onCancel: {
        work.cancel()
    }
    guard let outcome else {
        work.cancel()
        return nil
    }
    return try outcome.get()
}

/// A continuation resumed by whichever of two tasks comes first.
private final class Once<Value: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<Value, Never>?>

    init(_ continuation: CheckedContinuation<Value, Never>) {
        self.continuation = Mutex(continuation)
    }

    func resume(returning value: Value) {
        continuation.withLock { $0.take() }?.resume(returning: value)
    }
}
