// ArrayFSMTools, bench-serve: one timed phase through Kafka: produce, read every result, time its stages.
import ArrayFSMService
import Foundation
import Kafka
import Logging
import Synchronization

extension ServeBenchmark {
    /// Produces the commands (all at once, or `rate` per second) and reads results until every one
    /// is answered; latency is from the send to the result's arrival.
    func phase(
        _ harness: ServiceHarness, _ reader: ResultReader, _ name: String, rows: Int, commands: [(Int64, String, [String: Any])], rate: Int? = nil
    ) async throws -> Phase {
        let tag = UUID().uuidString.prefix(8)
        let encoded = commands.enumerated().map { index, command in
            (key: CommandMessage.key(arrayID: command.0), value: CommandMessage.json(command.1, id: "\(tag)-\(index)", payload: command.2))
        }
        let sentAt = Mutex<[Double]>(Array(repeating: 0, count: encoded.count))
        let start = ContinuousClock.now
        let clock = ContinuousClock.now
        let sentAtWall = Mutex<[Double]>(Array(repeating: 0, count: encoded.count))
        let readTask = Task { () throws -> ([Double], [Stamps]) in
            var latencies: [Double] = []
            var stamps: [Stamps] = []
            var seen = Set<Int>()
            let deadline = ContinuousClock.now + .seconds(600)
            while seen.count < encoded.count && ContinuousClock.now < deadline {
                for record in try await reader.poll() {
                    guard let id = Self.commandIndex(record, tag: tag), !seen.contains(id) else { continue }
                    seen.insert(id)
                    let now = (ContinuousClock.now - clock).seconds
                    latencies.append((now - sentAt.withLock { $0[id] }) * 1000)
                    if let relayed = record.timestampMilliseconds, let applied = Self.processedAt(record) {
                        stamps.append(Stamps(sent: sentAtWall.withLock { $0[id] }, applied: applied, relayed: Double(relayed),
                                             read: Date().timeIntervalSince1970 * 1000))
                    }
                }
            }
            return (latencies, stamps)
        }
        if let rate {
            let perTick = max(1, rate / 100)
            var index = 0
            while index < encoded.count {
                let tickStart = ContinuousClock.now
                let slice = Array(encoded[index..<min(index + perTick, encoded.count)])
                let now = (ContinuousClock.now - clock).seconds
                sentAt.withLock { for offset in 0..<slice.count { $0[index + offset] = now } }
                let wall = Date().timeIntervalSince1970 * 1000
                sentAtWall.withLock { for offset in 0..<slice.count { $0[index + offset] = wall } }
                try await harness.produce(slice.map { ($0.key, $0.value) }, waitForDelivery: false)
                index += slice.count
                let elapsed = ContinuousClock.now - tickStart
                if elapsed < .milliseconds(10) { try await Task.sleep(for: .milliseconds(10) - elapsed) }
            }
        } else {
            let now = (ContinuousClock.now - clock).seconds
            sentAt.withLock { for index in 0..<encoded.count { $0[index] = now } }
            let wall = Date().timeIntervalSince1970 * 1000
            sentAtWall.withLock { for index in 0..<encoded.count { $0[index] = wall } }
            try await harness.produce(encoded.map { ($0.key, $0.value) }, waitForDelivery: false)
        }
        let (unsorted, stamps) = try await readTask.value
        let latencies = unsorted.sorted()
        func quantile(_ values: [Double], _ q: Double) -> Double {
            values.isEmpty ? 0 : values.sorted()[min(values.count - 1, Int(Double(values.count) * q))]
        }
        func median(_ values: [Double]) -> Double { quantile(values, 0.5) }
        func p99(_ values: [Double]) -> Double { quantile(values, 0.99) }
        let seconds = (ContinuousClock.now - start).seconds
        guard latencies.count == encoded.count else {
            throw ChildProcess.Failure(description: "\(name): \(latencies.count) of \(encoded.count) results arrived")
        }
        var phase = Phase(name: name, commands: encoded.count, rows: rows, seconds: seconds, latencies: latencies)
        if !stamps.isEmpty {
            phase.stages = (median(stamps.map { $0.applied - $0.sent }), median(stamps.map { $0.relayed - $0.applied }),
                            median(stamps.map { $0.read - $0.relayed }))
            phase.stagesP99 = (p99(stamps.map { $0.applied - $0.sent }), p99(stamps.map { $0.relayed - $0.applied }),
                               p99(stamps.map { $0.read - $0.relayed }))
            let firstSent = sentAtWall.withLock { $0.min() ?? 0 }
            phase.span = (firstApplied: stamps.map(\.applied).min()! - firstSent, lastApplied: stamps.map(\.applied).max()! - firstSent,
                          lastRelayed: stamps.map(\.relayed).max()! - firstSent, lastRead: stamps.map(\.read).max()! - firstSent)
        }
        return phase
    }

    /// When one command was sent and its result applied (`processed_at`), relayed (the result's
    /// Kafka timestamp) and read: wall-clock milliseconds since 1970, the clock the first two share.
    struct Stamps {
        var sent: Double
        var applied: Double
        var relayed: Double
        var read: Double
    }

    /// A result event's `processed_at` in milliseconds since 1970.
    static func processedAt(_ record: KafkaRecord) -> Double? {
        guard let text = record.stringField("processed_at") else { return nil }
        return try? Date(text, strategy: .iso8601.year().month().day().time(includingFractionalSeconds: true))
            .timeIntervalSince1970 * 1000
    }

    static func commandIndex(_ record: KafkaRecord, tag: Substring) -> Int? {
        guard let id = record.stringField("command_id"), id.hasPrefix(tag) else { return nil }
        return Int(id.dropFirst(tag.count + 1))
    }
}
