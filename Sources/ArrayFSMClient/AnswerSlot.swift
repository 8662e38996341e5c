// ArrayFSMClient — the scheduler's side of the wire contract: commands sent over Kafka, typed
// answers read from a private reply topic. Knows no SQL and nothing of serve's internals.
import Synchronization

/// A command sent and not yet answered: ``answer()`` waits for serve's answer, or for the
/// ``CommandTimeout`` of the call's deadline.
public final class PendingAnswer: Sendable {
    /// The command's id.
    public let commandID: String
    private let state = Mutex<State>(.waiting(nil))

    private enum State {
        case waiting(CheckedContinuation<CommandAnswer, any Error>?)
        case done(Result<CommandAnswer, any Error>)
    }

    init(commandID: String) { self.commandID = commandID }

    /// The answer (an answer may be `rejected`: see ``CommandAnswer/result(as:)``).
    /// - Throws: ``CommandTimeout`` at the call's deadline, ``ArrayFSMClientStopped`` when the client stopped first.
    public func answer() async throws -> CommandAnswer {
        try await withCheckedThrowingContinuation { continuation in
            let ready = state.withLock { state -> Result<CommandAnswer, any Error>? in
                switch state {
                case .done(let result): return result
                case .waiting:
                    state = .waiting(continuation)
                    return nil
                }
            }
            if let ready { continuation.resume(with: ready) }
        }
    }

    /// The answer or failure once there is one; nil while the call waits.
    public var outcome: Result<CommandAnswer, any Error>? {
        state.withLock { state in
            guard case .done(let result) = state else { return nil }
            return result
        }
    }

    /// Settles the call; only the first outcome counts.
    func complete(_ result: Result<CommandAnswer, any Error>) {
        let waiter = state.withLock { state -> CheckedContinuation<CommandAnswer, any Error>?? in
            guard case .waiting(let continuation) = state else { return nil }
            state = .done(result)
            return .some(continuation)
        }
        if case .some(.some(let continuation)) = waiter { continuation.resume(with: result) }
    }
}
