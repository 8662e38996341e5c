// ArrayFSMLoad — load-test tooling: topic dumps (kcat -J), replay, workload generation, seeding.
// Uses Kafka and PostgreSQL directly; never the service.
import Foundation
import Kafka
import Logging

/// Reads a topic, all partitions, from a starting point to its end (as it was when the dump
/// started) or to a count, as dump records.
public struct Dumper: Sendable {
    /// Where to start in each partition.
    public enum Start: Sendable, Equatable {
        case beginning
        /// Skip messages with a lower offset.
        case offset(Int64)
        /// Skip messages older than this many milliseconds since 1970.
        case timestamp(Int64)
    }

    public var bootstrapServers: String
    public var topic: String
    public var start: Start
    public var count: Int?
    public var properties: [String: String]

    public init(bootstrapServers: String, topic: String, start: Start = .beginning, count: Int? = nil, properties: [String: String] = [:]) {
        self.bootstrapServers = bootstrapServers
        self.topic = topic
        self.start = start
        self.count = count
        self.properties = properties
    }

    /// Reads the topic and hands each record to `write`, in order per partition; returns the count.
    @discardableResult
    public func dump(logger: Logger, progress: (Int, Int) -> Void = { _, _ in }, write: (TopicDumpRecord) throws -> Void) async throws -> Int {
        // A group of its own that commits nothing: a dump never moves anyone's offsets.
        let consumer = try KafkaConsumer(
            configuration: KafkaConfiguration(
                bootstrapServers: bootstrapServers, clientID: "arrayfsm-dump", groupID: "arrayfsm-dump-\(UUID().uuidString)",
                properties: ["enable.auto.commit": "false", "auto.offset.reset": "earliest", "fetch.wait.max.ms": "50"]
                    .merging(properties) { $1 }),
            logger: logger)
        let partitions = try await consumer.partitions(of: topic)
        var remaining: [Int32: Int64] = [:]  // partition → high watermark still to reach
        var total = 0
        for partition in partitions {
            let marks = try await consumer.watermarks(of: KafkaTopicPartition(topic: topic, partition: partition))
            if marks.high > marks.low {
                remaining[partition] = marks.high
                total += Int(marks.high - marks.low)
            }
        }
        try consumer.subscribe(topics: [topic])
        var written = 0
        let limit = count ?? .max
        while !remaining.isEmpty && written < limit {
            let polled = try await consumer.poll(maxMessages: 5000, timeout: .milliseconds(200))
            for message in polled.messages where written < limit {
                guard let end = remaining[message.partition], message.offset < end else { continue }
                if message.offset + 1 >= end { remaining[message.partition] = nil }
                switch start {
                case .beginning: break
                case .offset(let first): if message.offset < first { continue }
                case .timestamp(let first): if (message.timestampMilliseconds ?? 0) < first { continue }
                }
                try write(TopicDumpRecord(
                    topic: message.topic, partition: message.partition, offset: message.offset,
                    timestamp: message.timestampMilliseconds, key: message.key, payload: message.value,
                    headers: message.headers.map { (name: $0.name, value: $0.value) }))
                written += 1
            }
            progress(written, total)
        }
        await consumer.close()
        return written
    }
}
