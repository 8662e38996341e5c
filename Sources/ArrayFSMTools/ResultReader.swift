// ArrayFSMTools: a reader of new messages on one topic, for benchmarks measuring while commands flow.
import Foundation
import Kafka
import Logging

/// Reads a topic's new messages in a group of its own.
public final class ResultReader: Sendable {
    let consumer: KafkaConsumer

    init(bootstrapServers: String, topic: String, logger: Logger) throws {
        consumer = try KafkaConsumer(
            configuration: KafkaConfiguration(
                bootstrapServers: bootstrapServers, clientID: "bench-reader", groupID: "bench-\(UUID().uuidString.prefix(8))",
                // A benchmark may not poll for a while (its direct-SQL phase): without a long poll
                // interval the reader leaves its group meanwhile and re-reads the topic on rejoining.
                properties: ServiceHarness.fastGroupProperties.merging([
                    "enable.auto.commit": "false", "auto.offset.reset": "earliest", "max.poll.interval.ms": "600000",
                ]) { $1 }),
            logger: logger)
        try consumer.subscribe(topics: [topic])
    }

    /// Polls until the group gave this reader its partitions (joining takes seconds on the mock cluster).
    public func waitForAssignment(timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        while try consumer.assignment().isEmpty && ContinuousClock.now < deadline {
            _ = try await consumer.poll(maxMessages: 1, timeout: .milliseconds(100))
        }
    }

    /// The next messages (waits up to 100 ms).
    public func poll() async throws -> [KafkaRecord] {
        try await consumer.poll(maxMessages: 10_000, timeout: .milliseconds(100)).messages.map(KafkaRecord.init)
    }

    public func close() async { await consumer.close() }
}
