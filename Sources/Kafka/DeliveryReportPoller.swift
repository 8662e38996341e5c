// Kafka — a Swift wrapper over librdkafka (producer, consumer, admin, mock cluster).
// Knows no arrayfsm word and no SQL.
internal import CRdkafka
internal import Foundation
internal import Synchronization

/// A dedicated thread that serves a producer's delivery reports with blocking `rd_kafka_poll`,
/// so reports are handled as soon as they arrive instead of on a fixed sleep interval.
final class DeliveryReportPoller: Sendable {
    private let stopRequested = Atomic<Bool>(false)
    private let stopped = Mutex<CheckedContinuation<Void, Never>?>(nil)
    private let finished = Atomic<Bool>(false)

    init(handle: KafkaClientHandle, name: String) {
        let thread = Thread { [self] in
            while !stopRequested.load(ordering: .acquiring) {
                rd_kafka_poll(handle.pointer, 100)
            }
            // Fail what is still queued so every waiting sender is resumed rather than leaked.
            rd_kafka_purge(handle.pointer, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
            var rounds = 0
            while rd_kafka_outq_len(handle.pointer) > 0 && rounds < 50 {
                rd_kafka_poll(handle.pointer, 100)
                rounds += 1
            }
            rd_kafka_poll(handle.pointer, 0)
            finished.store(true, ordering: .releasing)
            stopped.withLock { $0.take() }?.resume()
        }
        thread.name = name
        thread.start()
    }

    /// Asks the thread to stop without waiting.
    func requestStop() { stopRequested.store(true, ordering: .releasing) }

    /// Stops the thread and waits until it has served its last report.
    func stop() async {
        requestStop()
        await withCheckedContinuation { continuation in
            let done = stopped.withLock { waiter -> Bool in
                if finished.load(ordering: .acquiring) { return true }
                waiter = continuation
                return false
            }
            if done { continuation.resume() }
        }
    }
}
