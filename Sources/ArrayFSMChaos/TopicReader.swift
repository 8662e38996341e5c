import ArrayFSMTesting
import Foundation
import Kafka

/// Reads whole topics of a scenario's broker.
struct TopicReader {
    var harness: ServiceHarness

    /// Partition → high watermark.
    func endOffsets(_ topic: String) async throws -> [Int32: Int64] {
        let consumer = try KafkaConsumer(configuration: KafkaConfiguration(
            bootstrapServers: harness.bootstrapServers, clientID: "chaos-watermarks", groupID: "chaos-watermarks-\(UUID().uuidString.prefix(8))"))
        defer { Task { await consumer.close() } }
        var ends: [Int32: Int64] = [:]
        for partition in try await consumer.partitions(of: topic) {
            ends[partition] = try await consumer.watermarks(of: KafkaTopicPartition(topic: topic, partition: partition)).high
        }
        return ends
    }

    /// Every record of `topic` up to its current end.
    func all(_ topic: String) async throws -> [KafkaRecord] {
        let total = try await endOffsets(topic).values.reduce(0, +)
        guard total > 0 else { return [] }
        return try await harness.read(topic, timeout: .seconds(120)) { $0.count >= total }
    }
}
