// Kafka — a Swift wrapper over librdkafka (producer, consumer, admin, mock cluster).
// Knows no arrayfsm word and no SQL.
internal import CRdkafka
internal import Synchronization

/// Counts the delivery reports of one send (one message or a batch) and reports once all are in.
///
/// Message `i` carries the address of `slots[i]` as its librdkafka per-message opaque; every slot
/// holds this object's address, so a report finds both its tracker and its message's index. The
/// object keeps itself alive (one retain) until its last report arrives.
final class DeliveryTracker: @unchecked Sendable {
    private struct State {
        var failed: [KafkaDeliveryReport.Failure] = []
        var report: KafkaDeliveryReport?
        var waiter: CheckedContinuation<KafkaDeliveryReport, Never>?
    }

    // Starts at 1: a guard the sender drops after enqueueing, so a fast report can't finish early.
    private let outstanding = Atomic<Int>(1)
    // Successes are only counted (no lock on the hot path); failures are kept under the mutex.
    private let delivered = Atomic<Int>(0)
    private let state = Mutex(State())
    private let completion: (@Sendable (KafkaDeliveryReport) -> Void)?
    // Written once in init, before any message is produced; read-only afterwards.
    private let slots: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    private let count: Int

    init(count: Int, completion: (@Sendable (KafkaDeliveryReport) -> Void)? = nil) {
        self.completion = completion
        self.count = count
        slots = .allocate(capacity: max(1, count))
        slots.initialize(repeating: nil, count: max(1, count))
        let me = Unmanaged.passUnretained(self).toOpaque()
        for index in 0..<count { slots[index] = me }
    }

    deinit { slots.deallocate() }

    /// Retains the tracker until its last report and counts the messages to come (call once).
    func start() {
        _ = Unmanaged.passRetained(self)
        outstanding.add(count, ordering: .relaxed)
    }

    /// The per-message opaque of message `index`.
    func opaque(_ index: Int) -> UnsafeMutableRawPointer { UnsafeMutableRawPointer(slots + index) }

    /// Gives up on `count` expected messages that could not be queued (the sender throws).
    func abandon(_ count: Int) {
        guard count > 0 else { return }
        if outstanding.subtract(count, ordering: .acquiringAndReleasing).newValue == 0 { finish() }
    }

    /// Records the outcome of message `index`.
    func record(_ error: KafkaError?, index: Int) {
        if let error {
            state.withLock { $0.failed.append(.init(index: index, error: error)) }
        } else {
            delivered.add(1, ordering: .relaxed)
        }
        if outstanding.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { finish() }
    }

    /// Drops the sender's guard count taken by `start()`.
    func dropGuard() {
        if outstanding.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { finish() }
    }

    /// Records a report that arrived with `opaque` (a slot address) on the delivery thread.
    static func record(_ error: KafkaError?, opaque: UnsafeMutableRawPointer) {
        let slot = opaque.assumingMemoryBound(to: UnsafeMutableRawPointer?.self)
        guard let owner = slot.pointee else { return }
        // The tracker holds a retain on itself until its last report, so no retain/release is needed here.
        Unmanaged<DeliveryTracker>.fromOpaque(owner)._withUnsafeGuaranteedRef { tracker in
            tracker.record(error, index: slot - tracker.slots)
        }
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
            let report = KafkaDeliveryReport(delivered: delivered.load(ordering: .relaxed), failed: state.failed)
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
    guard let message, let slot = message.pointee._private else { return }
    let error = message.pointee.err
    DeliveryTracker.record(error == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(error), opaque: slot)
}
