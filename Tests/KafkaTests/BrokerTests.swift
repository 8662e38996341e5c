import Foundation
import Kafka
import Testing

@Suite("Brokers and administration", .serialized)
struct BrokerTests {
    @Test("messages produced while the broker is down are all delivered once it is back, none lost or duplicated")
    func produceThroughBrokerOutage() async throws {
        // Needs control over the broker, so always a private mock cluster.
        let topic = TestBroker.uniqueName("outage")
        let cluster = try MockKafkaCluster(brokers: 1, topics: [topic: 1])
        let producer = try KafkaProducer(configuration: TestBroker.producerConfiguration(bootstrapServers: cluster.bootstrapServers))
        let before = try await producer.send((0..<20).map { KafkaOutgoingMessage(topic: topic, value: Array("m-\($0)".utf8)) })
        #expect(before.delivered == 20)

        try cluster.setBrokerDown(1)
        let during = Task {
            try await producer.send((20..<70).map { KafkaOutgoingMessage(topic: topic, value: Array("m-\($0)".utf8)) })
        }
        try await Task.sleep(for: .seconds(2))
        try cluster.setBrokerUp(1)
        let report = try await during.value
        #expect(report.delivered == 50)
        #expect(report.failures.isEmpty)
        await producer.close()

        let consumer = try KafkaConsumer(configuration: TestBroker.consumerConfiguration(
            group: TestBroker.uniqueName("g"), bootstrapServers: cluster.bootstrapServers))
        try consumer.subscribe(topics: [topic])
        let (messages, _) = try await consumer.pollUntil { received, _ in received.count >= 70 }
        await consumer.close()
        #expect(messages.map(\.offset) == (0..<70).map(Int64.init))
        #expect(messages.map { String(decoding: $0.value ?? [], as: UTF8.self) } == (0..<70).map { "m-\($0)" })
        cluster.stop()
    }

    @Test("creating a topic twice succeeds (TOPIC_ALREADY_EXISTS is success)")
    func createTopicTwice() async throws {
        let admin = try KafkaAdmin(configuration: KafkaConfiguration(bootstrapServers: TestBroker.bootstrapServers))
        let name = TestBroker.uniqueName("admin")
        if TestBroker.isMock {
            // librdkafka's mock cluster does not implement CreateTopics: the call must fail cleanly, not hang or crash.
            let error = await #expect(throws: KafkaError.self) {
                try await admin.createTopicIfMissing(name, partitions: 3, timeout: .seconds(3))
            }
            #expect(error?.isFatal == false)
            print("mock cluster CreateTopics: \(error.map(String.init(describing:)) ?? "no error")")
        } else {
            try await admin.createTopicIfMissing(name, partitions: 3)
            try await admin.createTopicIfMissing(name, partitions: 3)
            // The topic exists with 3 partitions: produce to its last one.
            let producer = try KafkaProducer(configuration: TestBroker.producerConfiguration())
            try await producer.send(topic: name, partition: 2, value: Array("x".utf8))
            await producer.close()
        }
    }

    @Test("kcat sees the mock broker and its topics")
    func kcatListsMockBroker() async throws {
        let kcat = ["/usr/bin/kcat", "/usr/bin/kafkacat"].first { FileManager.default.isExecutableFile(atPath: $0) }
        try #require(kcat != nil, "kcat is not installed")
        let topic = TestBroker.uniqueName("kcat")
        let cluster = try MockKafkaCluster(brokers: 3, topics: [topic: 5])
        let process = Process()
        process.executableURL = URL(fileURLWithPath: kcat!)
        process.arguments = ["-b", cluster.bootstrapServers, "-L", "-m", "5"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(output.contains("3 brokers"))
        #expect(output.contains("topic \"\(topic)\" with 5 partitions"))
        cluster.stop()
    }
}
