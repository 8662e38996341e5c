// ArrayFSMLoad — load-test tooling: topic dumps (kcat -J), replay, workload generation, seeding.
// Uses Kafka and PostgreSQL directly; never the service.
import Foundation
import Kafka
import Logging

/// Produces a dump's messages to a topic, in the dump's order (so in order per key), as fast as
/// possible, at a fixed rate, or at a speed relative to the recorded timestamps.
public struct Replayer: Sendable {
    /// How fast to produce.
    public enum Pace: Sendable, Equatable {
        case asFastAsPossible
        /// Messages per second.
        case rate(Double)
        /// Relative to the recorded timestamps: 2 replays twice as fast as recorded.
        case speed(Double)
    }

    public var producer: KafkaProducer
    /// Where to produce; nil keeps each record's topic.
    public var topic: String?
    public var pace: Pace
    /// Messages handed to the producer at a time.
    public var chunk: Int

    public init(producer: KafkaProducer, topic: String?, pace: Pace = .asFastAsPossible, chunk: Int = 5000) {
        self.producer = producer
        self.topic = topic
        self.pace = pace
        self.chunk = chunk
    }

    /// Replays `lines` (dump lines; blank lines skipped); returns messages delivered. `progress` gets
    /// the count so far. Waits for every delivery report before returning.
    @discardableResult
    public func replay(lines: some Sequence<Substring>, progress: (Int) -> Void = { _ in }) async throws -> Int {
        let start = ContinuousClock.now
        var firstTimestamp: Int64?
        var sent = 0
        var pending: [KafkaOutgoingMessage] = []
        var failures: [KafkaError] = []
        let tracker = DeliveryFailures()
        for (number, line) in lines.enumerated() where !line.allSatisfy(\.isWhitespace) {
            let record: TopicDumpRecord
            do {
                record = try TopicDumpRecord(line: line)
            } catch {
                throw TopicDumpRecord.ParseError(description: "line \(number + 1): \(error)")
            }
            guard let target = topic ?? (record.topic.isEmpty ? nil : record.topic) else {
                throw TopicDumpRecord.ParseError(description: "line \(number + 1) has no topic; pass --topic")
            }
            // Pacing decides when this message may go.
            switch pace {
            case .asFastAsPossible:
                break
            case .rate(let perSecond):
                try await wait(until: start + .seconds(Double(sent) / perSecond), flushing: &pending, tracker)
            case .speed(let factor):
                if let ts = record.timestamp {
                    let first = firstTimestamp ?? ts
                    firstTimestamp = first
                    try await wait(until: start + .milliseconds(Double(ts - first) / factor), flushing: &pending, tracker)
                }
            }
            pending.append(KafkaOutgoingMessage(
                topic: target, key: record.key, value: record.payload,
                headers: record.headers.map { KafkaHeader(name: $0.name, value: $0.value) }))
            sent += 1
            if pending.count >= chunk {
                try await flush(&pending, tracker)
                progress(sent)
            }
        }
        try await flush(&pending, tracker)
        try await producer.flush(timeout: .seconds(60))
        failures = tracker.failures
        progress(sent)
        if let failure = failures.first { throw failure }
        return sent
    }

    private func wait(until instant: ContinuousClock.Instant, flushing pending: inout [KafkaOutgoingMessage],
                      _ tracker: DeliveryFailures) async throws {
        guard instant > .now else { return }
        try await flush(&pending, tracker)
        try await Task.sleep(until: instant)
    }

    private func flush(_ pending: inout [KafkaOutgoingMessage], _ tracker: DeliveryFailures) async throws {
        guard !pending.isEmpty else { return }
        // Enqueued in order on one producer (idempotent): per-partition order is kept.
        try await producer.enqueue(pending) { report in tracker.add(report.failures) }
        pending.removeAll(keepingCapacity: true)
    }
}

/// Delivery failures reported on librdkafka's thread.
final class DeliveryFailures: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [KafkaError] = []
    func add(_ failures: [KafkaError]) {
        guard !failures.isEmpty else { return }
        lock.lock()
        list += failures
        lock.unlock()
    }
    var failures: [KafkaError] {
        lock.lock()
        defer { lock.unlock() }
        return list
    }
}
