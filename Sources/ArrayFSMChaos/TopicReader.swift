// ArrayFSMChaos — the fault suite: serve processes under kills, restarts, broker and database
// faults and hostile input, checked by an oracle against a clean run. Built on ArrayFSMTools.
import ArrayFSMTools
import Foundation
import Kafka

/// Reads whole topics of a scenario's broker.
struct TopicReader {
    var harness: ServiceHarness

    /// A topic that could not be read to its end in time: the oracle cannot judge the run.
    struct Incomplete: Error, CustomStringConvertible {
        var topic: String
        var reached: [Int32: Int64]
        var ends: [Int32: Int64]

        var description: String {
            "could not read \(topic) to its end (partition: next offset / end: \(ends.keys.sorted().map { "\($0): \(reached[$0] ?? -1) / \(ends[$0]!)" }.joined(separator: ", "))); is the broker up?"
        }
    }

    /// Partition → high watermark.
    func endOffsets(_ topic: String) async throws -> [Int32: Int64] {
        let consumer = try makeConsumer(clientID: "chaos-watermarks")
        defer { Task { await consumer.close() } }
        return try await watermarks(topic, consumer: consumer).mapValues(\.high)
    }

    /// Every topic the cluster has.
    func topicNames() async throws -> [String] {
        let consumer = try makeConsumer(clientID: "chaos-metadata")
        defer { Task { await consumer.close() } }
        return try await consumer.topicNames()
    }

    /// Every record of `topic` up to its end as of the call.
    ///
    /// Reads by a manual assignment from each partition's first offset rather than by joining a
    /// group: the oracle then waits for no coordinator, and knows exactly when it has everything.
    /// - Throws: ``Incomplete`` when a partition's end is not reached within `timeout`.
    func all(_ topic: String, timeout: Duration = .seconds(120)) async throws -> [KafkaRecord] {
        let consumer = try makeConsumer(clientID: "chaos-reader")
        do {
            let records = try await read(topic, consumer: consumer, timeout: timeout)
            await consumer.close()
            return records
        } catch {
            await consumer.close()
            throw error
        }
    }

    private func read(_ topic: String, consumer: KafkaConsumer, timeout: Duration) async throws -> [KafkaRecord] {
        let marks = try await watermarks(topic, consumer: consumer).filter { $0.value.high > $0.value.low }
        let ends = marks.mapValues(\.high)
        var next = marks.mapValues(\.low)
        func unfinished() -> Bool { next.contains { $0.value < ends[$0.key]! } }
        guard unfinished() else { return [] }
        try consumer.assign(Dictionary(uniqueKeysWithValues: next.map { (KafkaTopicPartition(topic: topic, partition: $0.key), $0.value) }))
        var records: [KafkaRecord] = []
        let deadline = ContinuousClock.now + timeout
        while unfinished() && ContinuousClock.now < deadline {
            for message in try await consumer.poll(maxMessages: 5000, timeout: .milliseconds(200)).messages
            where message.offset < ends[message.partition] ?? 0 {
                records.append(KafkaRecord(message))
                next[message.partition] = max(next[message.partition] ?? 0, message.offset + 1)
            }
        }
        if unfinished() { throw Incomplete(topic: topic, reached: next, ends: ends) }
        return records
    }

    private func watermarks(_ topic: String, consumer: KafkaConsumer) async throws -> [Int32: (low: Int64, high: Int64)] {
        var marks: [Int32: (low: Int64, high: Int64)] = [:]
        for partition in try await consumer.partitions(of: topic) {
            marks[partition] = try await consumer.watermarks(of: KafkaTopicPartition(topic: topic, partition: partition))
        }
        return marks
    }

    /// A consumer that never joins its group (the id is required, not used).
    private func makeConsumer(clientID: String) throws -> KafkaConsumer {
        try KafkaConsumer(configuration: KafkaConfiguration(
            bootstrapServers: harness.bootstrapServers, clientID: clientID, groupID: "chaos-reader-\(UUID().uuidString.prefix(8))",
            properties: ServiceHarness.fastGroupProperties.merging(["enable.auto.commit": "false"]) { $1 }))
    }
}
