// ArrayFSMService — the processor: command batches from Kafka, one transaction each, the outbox
// and its relay, readiness and metrics. Uses ArrayFSM for the domain and Kafka for the wire.
import Logging

/// A deadline for steps that finish in milliseconds when the process is healthy: a step still
/// running after ``timeout`` is stuck, not slow (e.g. a database connection that never answers
/// after a server restart). Nothing inside the process can reliably free it, so ``onStall`` runs;
/// `serve` exits there and its supervisor restarts it. That is safe because every step guarded
/// leaves its work redoable: a batch's offsets are stored only after its transaction commits, and
/// outbox rows are deleted only after their delivery reports.
public struct StallWatchdog: Sendable {
    /// How long a guarded step may take.
    public let timeout: Duration
    /// What a stuck step does.
    public let onStall: @Sendable (Duration) -> Void

    public init(timeout: Duration, onStall: @escaping @Sendable (Duration) -> Void) {
        self.timeout = timeout
        self.onStall = onStall
    }

    /// Runs `body`; if it has not returned after ``timeout``, logs `step` as stuck and calls
    /// ``onStall`` (once; `body` keeps running, as nothing can stop it from outside).
    public func guarding<Result>(
        _ step: String, logger: Logger, metadata: Logger.Metadata = [:], _ body: () async throws -> Result
    ) async rethrows -> Result {
        let alarm = arm(step, logger: logger, metadata: metadata)
        defer { alarm.disarm() }
        return try await body()
    }

    /// Starts the deadline of a step that does not fit one closure; ``Alarm/disarm()`` ends it.
    public func arm(_ step: String, logger: Logger, metadata: Logger.Metadata = [:]) -> Alarm {
        Alarm(timer: Task { [timeout, onStall] in
            try await Task.sleep(for: timeout)
            var metadata = metadata
            metadata["step"] = "\(step)"
            metadata["timeout"] = "\(timeout)"
            logger.critical("a step did not finish; the process is stuck", metadata: metadata)
            onStall(timeout)
        })
    }

    /// A running deadline.
    public struct Alarm: Sendable {
        let timer: Task<Void, any Error>

        /// Ends the deadline (again: no effect).
        public func disarm() {
            timer.cancel()
        }
    }
}

extension Optional where Wrapped == StallWatchdog {
    /// Runs `body` under the watchdog, or unguarded when there is none.
    func guarding<Result>(
        _ step: String, logger: Logger, metadata: Logger.Metadata = [:], _ body: () async throws -> Result
    ) async rethrows -> Result {
        guard let watchdog = self else { return try await body() }
        return try await watchdog.guarding(step, logger: logger, metadata: metadata, body)
    }
}

extension Optional where Wrapped == StallWatchdog {
    /// Starts the watchdog's deadline for `step`, or nothing when there is none.
    func arm(_ step: String, logger: Logger) -> StallWatchdog.Alarm? {
        self?.arm(step, logger: logger)
    }
}
