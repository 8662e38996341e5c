import Foundation
import Kafka
import Testing

@Suite("Producer and consumer", .serialized)
struct ProducerConsumerTests {
    @Test("round trip keeps headers, null values, empty keys and null keys")
    func roundTrip() async throws {
        let topic = try await TestBroker.makeTopic("roundtrip", partitions: 1)
        let producer = try KafkaProducer(configuration: TestBroker.producerConfiguration())
        try await producer.send(topic: topic, key: Array("k1".utf8), value: Array("hello".utf8),
                                headers: [KafkaHeader(name: "trace", string: "abc"), KafkaHeader(name: "nothing", value: nil)])
        try await producer.send(topic: topic, key: [], value: nil)              // empty key, null value
        try await producer.send(topic: topic, key: nil, value: [])              // null key, empty value
        try await producer.send(topic: topic, key: [0, 255], value: [1, 2, 3], headers: [KafkaHeader(name: "bin", value: [0, 1])])
        await producer.close()

        let consumer = try KafkaConsumer(configuration: TestBroker.consumerConfiguration(group: TestBroker.uniqueName("g")))
        try consumer.subscribe(topics: [topic])
        let (messages, events) = try await consumer.pollUntil { received, _ in received.count >= 4 }
        await consumer.close()

        #expect(events.contains(.assigned([KafkaTopicPartition(topic: topic, partition: 0)])))
        try #require(messages.count == 4)
        #expect(messages.map(\.offset) == [0, 1, 2, 3])
        #expect(messages[0].key == Array("k1".utf8))
        #expect(messages[0].value == Array("hello".utf8))
        #expect(messages[0].headers == [KafkaHeader(name: "trace", string: "abc"), KafkaHeader(name: "nothing", value: nil)])
        #expect(messages[1].key == [])
        #expect(messages[1].value == nil)
        #expect(messages[2].key == nil)
        #expect(messages[2].value == [])
        #expect(messages[3].key == [0, 255])
        #expect(messages[3].value == [1, 2, 3])
        #expect(messages[3].headers == [KafkaHeader(name: "bin", value: [0, 1])])
    }

    @Test("in-place accessors read the same bytes as the copying ones, and survive a NULL value")
    func inPlaceAccess() async throws {
        let topic = try await TestBroker.makeTopic("inplace", partitions: 1)
        let producer = try KafkaProducer(configuration: TestBroker.producerConfiguration())
        try await producer.send(topic: topic, key: Array("key".utf8), value: Array("value".utf8))
        try await producer.send(topic: topic, value: nil)
        await producer.close()

        let consumer = try KafkaConsumer(configuration: TestBroker.consumerConfiguration(group: TestBroker.uniqueName("g")))
        try consumer.subscribe(topics: [topic])
        var batch: [KafkaMessage] = []
        let deadline = ContinuousClock.now + .seconds(30)
        while batch.count < 2 && ContinuousClock.now < deadline {
            batch += try await consumer.poll(maxMessages: 10, timeout: .milliseconds(200)).messages
        }
        try #require(batch.count == 2)
        #expect(batch[0].withUnsafeValue { $0.map { String(decoding: $0, as: UTF8.self) } } == "value")
        #expect(batch[0].withUnsafeKey { $0?.count } == 3)
        #expect(batch[0].valueString == "value")
        #expect(batch[0].topic == topic)
        #expect(batch[0].timestampMilliseconds != nil)
        #expect(batch[1].withUnsafeValue { $0 == nil })
        #expect(batch[1].valueString == nil)
        #expect(batch[1].key == nil)
        await consumer.close()
    }

    @Test("a new consumer of the group resumes at the committed offset")
    func resumeAtCommittedOffset() async throws {
        let topic = try await TestBroker.makeTopic("resume", partitions: 1)
        let group = TestBroker.uniqueName("g")
        try await produceNumbered(10, to: topic)
        let partition = KafkaTopicPartition(topic: topic, partition: 0)

        let first = try KafkaConsumer(configuration: TestBroker.consumerConfiguration(group: group))
        try first.subscribe(topics: [topic])
        var processed: [KafkaMessage] = []
        let deadline = ContinuousClock.now + .seconds(30)
        while processed.count < 4 && ContinuousClock.now < deadline {
            processed += try await first.poll(maxMessages: 4 - processed.count, timeout: .milliseconds(200)).messages
        }
        try #require(processed.map(\.offset) == [0, 1, 2, 3])
        try first.storeOffsets(for: processed)
        try await first.commit()
        #expect(try await first.committedOffsets(for: [partition]) == [partition: 4])
        await first.close()

        let second = try KafkaConsumer(configuration: TestBroker.consumerConfiguration(group: group))
        try second.subscribe(topics: [topic])
        let (messages, _) = try await second.pollUntil { received, _ in received.count >= 6 }
        await second.close()
        #expect(messages.map(\.offset) == Array(4...9))
        #expect(messages.first?.value == Array("m-4".utf8))
    }

    @Test("paused partitions deliver nothing until resumed; seek rewinds")
    func pauseResumeAndSeek() async throws {
        let topic = try await TestBroker.makeTopic("pause", partitions: 2)
        let consumer = try KafkaConsumer(configuration: TestBroker.consumerConfiguration(group: TestBroker.uniqueName("g")))
        try consumer.subscribe(topics: [topic])
        _ = try await consumer.pollUntil(store: false) { _, consumer in try consumer.assignment().count == 2 }
        let paused = KafkaTopicPartition(topic: topic, partition: 1)
        try consumer.pause([paused])
        // Produced after the pause, so no message of partition 1 was fetched before it.
        try await produceNumbered(5, to: topic, partition: 0)
        try await produceNumbered(5, to: topic, partition: 1)

        let (beforeResume, _) = try await consumer.pollUntil(timeout: .seconds(3)) { _, _ in false }
        #expect(beforeResume.allSatisfy { $0.partition == 0 })
        #expect(beforeResume.count == 5)

        try consumer.resume([paused])
        let (afterResume, _) = try await consumer.pollUntil { received, _ in received.count >= 5 }
        #expect(afterResume.map(\.partition) == [1, 1, 1, 1, 1])
        #expect(afterResume.map(\.offset) == [0, 1, 2, 3, 4])

        try await consumer.seek([KafkaTopicPartition(topic: topic, partition: 0): 3])
        let (afterSeek, _) = try await consumer.pollUntil { received, _ in received.count >= 2 }
        #expect(afterSeek.map(\.offset) == [3, 4])
        #expect(afterSeek.allSatisfy { $0.partition == 0 })
        await consumer.close()
    }

    @Test("a manual assignment reads from the given offsets without joining the group")
    func manualAssignment() async throws {
        let topic = try await TestBroker.makeTopic("assign", partitions: 2)
        try await produceNumbered(5, to: topic, partition: 0)
        try await produceNumbered(5, to: topic, partition: 1)
        let group = TestBroker.uniqueName("g")
        let consumer = try KafkaConsumer(configuration: TestBroker.consumerConfiguration(group: group))
        let first = KafkaTopicPartition(topic: topic, partition: 0), second = KafkaTopicPartition(topic: topic, partition: 1)
        try consumer.assign([first: 0, second: 3])
        let (messages, events) = try await consumer.pollUntil(store: false) { received, _ in received.count >= 7 }
        #expect(events.isEmpty)
        #expect(messages.filter { $0.partition == 0 }.map(\.offset) == [0, 1, 2, 3, 4])
        #expect(messages.filter { $0.partition == 1 }.map(\.offset) == [3, 4])
        #expect(try consumer.assignment().sorted { $0.partition < $1.partition } == [first, second])
        await consumer.close()
        // Nothing was stored, so the group has no offsets.
        let other = try KafkaConsumer(configuration: TestBroker.consumerConfiguration(group: group))
        #expect(try await other.committedOffsets(for: [first, second]).isEmpty)
        await other.close()
    }

    @Test("closing before the first assignment does not crash (default eager assignor)")
    func closeBeforeFirstAssignment() async throws {
        let topic = try await TestBroker.makeTopic("early-close", partitions: 2)
        for _ in 0..<3 {
            let consumer = try KafkaConsumer(configuration: TestBroker.consumerConfiguration(group: TestBroker.uniqueName("g")))
            try consumer.subscribe(topics: [topic])
            _ = try await consumer.poll(timeout: .milliseconds(1))
            #expect(try consumer.assignment().isEmpty)
            await consumer.close()
            await #expect(throws: KafkaError.self) { try await consumer.poll() }
        }
    }

    @Test("a consumer and producer dropped without close shut down on their own")
    func dropWithoutClose() async throws {
        let topic = try await TestBroker.makeTopic("drop", partitions: 1)
        do {
            let producer = try KafkaProducer(configuration: TestBroker.producerConfiguration())
            try await producer.send(topic: topic, value: Array("x".utf8))
            let consumer = try KafkaConsumer(configuration: TestBroker.consumerConfiguration(group: TestBroker.uniqueName("g")))
            try consumer.subscribe(topics: [topic])
            let (messages, _) = try await consumer.pollUntil { received, _ in received.count >= 1 }
            #expect(messages.count == 1)
        }
        // Give the poll and delivery threads time to close and destroy their clients.
        try await Task.sleep(for: .seconds(2))
    }

    @Test("configuration is validated with librdkafka's own error text")
    func configurationValidation() throws {
        #expect(throws: KafkaError.self) {
            try KafkaConfiguration(bootstrapServers: "x:1", properties: ["no.such.property": "1"])
        }
        do {
            _ = try KafkaConfiguration(bootstrapServers: "x:1", properties: ["session.timeout.ms": "banana"])
            Issue.record("expected an error")
        } catch {
            #expect(error.message.contains("session.timeout.ms"))
        }
        let valid = try KafkaConfiguration(bootstrapServers: "x:1", clientID: "c", groupID: "g").setting("linger.ms", to: "7")
        #expect(valid.properties["linger.ms"] == "7")
        #expect(valid.groupID == "g")
        #expect(throws: KafkaError.self) { try KafkaConsumer(configuration: KafkaConfiguration(bootstrapServers: "x:1")) }
    }

    @Test("statistics report consumer lag")
    func statisticsLag() async throws {
        let topic = try await TestBroker.makeTopic("stats", partitions: 1)
        try await produceNumbered(10, to: topic)
        let consumer = try KafkaConsumer(configuration: TestBroker.consumerConfiguration(
            group: TestBroker.uniqueName("g"), extra: ["statistics.interval.ms": "200"]))
        try consumer.subscribe(topics: [topic])
        var consumed: [KafkaMessage] = []
        let deadline = ContinuousClock.now + .seconds(30)
        while consumed.count < 4 && ContinuousClock.now < deadline {
            consumed += try await consumer.poll(maxMessages: 4 - consumed.count, timeout: .milliseconds(200)).messages
        }
        try consumer.storeOffsets(for: consumed)
        try await consumer.commit()
        var lag: Int64?
        // Statistics are served by the consumer's poll, so keep polling (one message at a time, not stored).
        while lag == nil && ContinuousClock.now < deadline {
            _ = try await consumer.poll(maxMessages: 1, timeout: .milliseconds(200))
            lag = consumer.latestStatistics?.consumerLag[KafkaTopicPartition(topic: topic, partition: 0)]
        }
        #expect(lag != nil && lag! > 0 && lag! <= 6)
        #expect(consumer.latestStatistics?.json.hasPrefix("{") == true)
        #expect(consumer.currentFatalError == nil)
        await consumer.close()
    }

    /// The producer keeps at most `topicHandleLimit` topic handles: producing to more distinct
    /// topics than that (and back to the first ones, whose handles were let go) still delivers all.
    @Test func moreTopicsThanTheHandleLimitStillDeliver() async throws {
        var topics: [String] = []
        for index in 0..<7 { topics.append(try await TestBroker.makeTopic("many-\(index)", partitions: 1)) }
        let producer = try KafkaProducer(configuration: TestBroker.producerConfiguration(), topicHandleLimit: 3)
        for round in 0..<2 {
            let report = try await producer.send(topics.map { KafkaOutgoingMessage(topic: $0, value: Array("\(round)".utf8)) })
            #expect(report.isComplete && report.delivered == topics.count)
            #expect(producer.cachedTopicHandles <= 3)
        }
        await producer.close()
        for topic in topics {
            let consumer = try KafkaConsumer(configuration: TestBroker.consumerConfiguration(group: TestBroker.uniqueName("many")))
            try consumer.subscribe(topics: [topic])
            var values: [String] = []
            let deadline = ContinuousClock.now + .seconds(30)
            while values.count < 2 && ContinuousClock.now < deadline {
                values += try await consumer.poll(maxMessages: 10, timeout: .milliseconds(200)).messages.map { String(decoding: $0.value ?? [], as: UTF8.self) }
            }
            await consumer.close()
            #expect(values == ["0", "1"], "\(topic)")
        }
    }

    /// A message the client refuses to queue is one failure in the report; the others are sent.
    @Test func aMessageRefusedAtQueueingFailsAloneInTheReport() async throws {
        let topic = try await TestBroker.makeTopic("refused", partitions: 1)
        let producer = try KafkaProducer(configuration: TestBroker.producerConfiguration())
        let report = try await producer.send([
            KafkaOutgoingMessage(topic: topic, value: [1]),
            KafkaOutgoingMessage(topic: topic, value: [UInt8](repeating: 7, count: 2_000_000)),
            KafkaOutgoingMessage(topic: topic, value: [3]),
        ])
        await producer.close()
        #expect(report.delivered == 2)
        #expect(report.failed.map(\.index) == [1])
        #expect(report.failed.first?.error.name == "MSG_SIZE_TOO_LARGE")
    }
}
