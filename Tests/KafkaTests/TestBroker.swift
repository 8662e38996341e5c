import Foundation
import Kafka

/// The broker the tests talk to: `KAFKA_BOOTSTRAP_SERVERS` if set, otherwise one in-process
/// `MockKafkaCluster` shared by every test of the process. Tests use unique topic and group names.
enum TestBroker {
    private static let mock: MockKafkaCluster? = {
        guard ProcessInfo.processInfo.environment["KAFKA_BOOTSTRAP_SERVERS"] == nil else { return nil }
        return try! MockKafkaCluster(brokers: 1)
    }()

    /// Bootstrap address of the broker under test.
    static var bootstrapServers: String {
        ProcessInfo.processInfo.environment["KAFKA_BOOTSTRAP_SERVERS"] ?? mock!.bootstrapServers
    }

    /// Whether the tests run against the in-process mock cluster.
    static var isMock: Bool { mock != nil }

    /// A name no other test (or earlier run against a persistent broker) uses.
    static func uniqueName(_ prefix: String) -> String {
        "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
    }

    /// Creates a fresh topic with `partitions` partitions and returns its name.
    static func makeTopic(_ prefix: String, partitions: Int32) async throws -> String {
        let name = uniqueName(prefix)
        if let mock {
            try mock.createTopic(name, partitions: partitions)
        } else {
            let admin = try KafkaAdmin(configuration: KafkaConfiguration(bootstrapServers: bootstrapServers))
            try await admin.createTopicIfMissing(name, partitions: partitions)
        }
        return name
    }

    /// Producer configuration for the broker under test.
    static func producerConfiguration(bootstrapServers: String = bootstrapServers) throws -> KafkaConfiguration {
        try KafkaConfiguration(bootstrapServers: bootstrapServers, clientID: "kafka-tests")
    }

    /// Consumer configuration with short group timeouts, so rebalances finish in seconds on the mock cluster.
    static func consumerConfiguration(group: String, bootstrapServers: String = bootstrapServers,
                                      extra: [String: String] = [:]) throws -> KafkaConfiguration {
        try KafkaConfiguration(
            bootstrapServers: bootstrapServers, clientID: "kafka-tests", groupID: group,
            properties: ["session.timeout.ms": "6000", "heartbeat.interval.ms": "500",
                         "max.poll.interval.ms": "6000"].merging(extra) { _, new in new }
        )
    }
}

/// A message reduced to what tests compare.
struct ReceivedMessage: Hashable, Sendable {
    var partition: Int32
    var offset: Int64
    var key: [UInt8]?
    var value: [UInt8]?
    var headers: [KafkaHeader]

    init(_ message: KafkaMessage) {
        partition = message.partition
        offset = message.offset
        key = message.key
        value = message.value
        headers = message.headers
    }
}

extension KafkaConsumer {
    /// Polls until `done` holds or `timeout` passes, storing offsets of everything received.
    /// Returns the messages and rebalance events seen.
    func pollUntil(timeout: Duration = .seconds(30), store: Bool = true,
                   _ done: (_ messages: [ReceivedMessage], _ consumer: KafkaConsumer) throws -> Bool)
        async throws -> (messages: [ReceivedMessage], events: [KafkaRebalanceEvent]) {
        let deadline = ContinuousClock.now + timeout
        var messages: [ReceivedMessage] = []
        var events: [KafkaRebalanceEvent] = []
        while ContinuousClock.now < deadline {
            if try done(messages, self) { break }
            let result = try await poll(maxMessages: 100, timeout: .milliseconds(100))
            messages += result.messages.map(ReceivedMessage.init)
            events += result.rebalanceEvents
            if store && !result.messages.isEmpty {
                // A partition revoked meanwhile fails with a state error: the message is redelivered; fine in tests.
                let failure: KafkaError? = { () -> KafkaError? in
                    do { try storeOffsets(for: result.messages); return nil } catch { return error as? KafkaError }
                }()
                if let failure, failure.code != KafkaError.stateCode { throw failure }
            }
        }
        return (messages, events)
    }
}

/// Produces `count` messages with value "prefix-i" (and key "k-i") and waits for delivery.
func produceNumbered(_ count: Int, to topic: String, prefix: String = "m", partition: Int32? = nil,
                     bootstrapServers: String = TestBroker.bootstrapServers) async throws {
    let producer = try KafkaProducer(configuration: TestBroker.producerConfiguration(bootstrapServers: bootstrapServers))
    let report = try await producer.send((0..<count).map {
        KafkaOutgoingMessage(topic: topic, partition: partition, key: Array("k-\($0)".utf8), value: Array("\(prefix)-\($0)".utf8))
    })
    await producer.close()
    if let failure = report.failures.first { throw failure }
}
