internal import CRdkafka
internal import Synchronization

/// Counts the delivery reports of one send (one message or a batch) and reports once all are in.
///
/// Each produced message carries this object's address as its librdkafka per-message opaque;
/// the object keeps itself alive (one retain) until its last report arrives.
final class DeliveryTracker: Sendable {
    private struct State {
        var failures: [KafkaError] = []
        var report: KafkaDeliveryReport?
        var waiter: CheckedContinuation<KafkaDeliveryReport, Never>?
    }

    // Starts at 1: a guard the sender drops after enqueueing, so a fast report can't finish early.
    private let outstanding = Atomic<Int>(1)
    // Successes are only counted (no lock on the hot path); failures are kept under the mutex.
    private let delivered = Atomic<Int>(0)
    private let state = Mutex(State())
    private let completion: (@Sendable (KafkaDeliveryReport) -> Void)?

    init(completion: (@Sendable (KafkaDeliveryReport) -> Void)? = nil) {
        self.completion = completion
    }

    /// Retains the tracker until its last report and returns the opaque for the first message.
    func start() -> UnsafeMutableRawPointer {
        Unmanaged.passRetained(self).toOpaque()
    }

    /// Called once before enqueueing `count` messages (one atomic add, not one per message).
    func expect(_ count: Int) { outstanding.add(count, ordering: .relaxed) }

    /// Gives up on `count` expected messages that could not be queued.
    func abandon(_ count: Int) {
        guard count > 0 else { return }
        if outstanding.subtract(count, ordering: .acquiringAndReleasing).newValue == 0 { finish() }
    }

    /// Records the outcome of one message (or drops the sender's guard with `nil`).
    func record(_ error: KafkaError?, countsAsMessage: Bool = true) {
        if countsAsMessage {
            if let error {
                state.withLock { $0.failures.append(error) }
            } else {
                delivered.add(1, ordering: .relaxed)
            }
        }
        if outstanding.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { finish() }
    }

    /// Waits until every message has a report.
    func report() async -> KafkaDeliveryReport {
        await withCheckedContinuation { continuation in
            let ready: KafkaDeliveryReport? = state.withLock { state in
                if let report = state.report { return report }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    private func finish() {
        let (report, waiter) = state.withLock { state in
            let report = KafkaDeliveryReport(delivered: delivered.load(ordering: .relaxed), failures: state.failures)
            state.report = report
            defer { state.waiter = nil }
            return (report, state.waiter)
        }
        waiter?.resume(returning: report)
        completion?(report)
        Unmanaged.passUnretained(self).release()
    }
}

/// librdkafka's delivery-report callback, run on the producer's delivery thread inside `rd_kafka_poll`.
func kafkaDeliveryCallback(_ client: OpaquePointer?, _ message: UnsafePointer<rd_kafka_message_t>?,
                           _ opaque: UnsafeMutableRawPointer?) {
    guard let message, let tracker = message.pointee._private else { return }
    let error = message.pointee.err
    // The tracker holds a retain on itself until its last report, so no retain/release is needed here.
    Unmanaged<DeliveryTracker>.fromOpaque(tracker)._withUnsafeGuaranteedRef {
        $0.record(error == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(error))
    }
}
