import Foundation
import Kafka
import Testing

@Suite("Consumer groups", .serialized)
struct ConsumerGroupTests {
    @Test("two consumers split the partitions; the survivor takes them all when the other closes")
    func splitAndTakeOver() async throws {
        let topic = try await TestBroker.makeTopic("split", partitions: 4)
        let group = TestBroker.uniqueName("g")
        try await produceNumbered(40, to: topic)
        let first = try KafkaConsumer(configuration: TestBroker.consumerConfiguration(group: group))
        let second = try KafkaConsumer(configuration: TestBroker.consumerConfiguration(group: group))
        try first.subscribe(topics: [topic])
        _ = try await first.pollUntil { _, consumer in try consumer.assignment().count == 4 }

        try second.subscribe(topics: [topic])
        async let secondRound = second.pollUntil { _, consumer in
            try consumer.assignment().count == 2 && first.assignment().count == 2
        }
        // The first member is told about the revocation while it still owns the partitions:
        // they stay assigned (and offsets storable) until its next poll acknowledges it.
        var revokeSeen = false
        let deadline = ContinuousClock.now + .seconds(30)
        while !revokeSeen && ContinuousClock.now < deadline {
            let result = try await first.poll(maxMessages: 100, timeout: .milliseconds(100))
            try first.storeOffsets(for: result.messages)
            if case .revoked(let partitions) = result.rebalanceEvents.last {
                revokeSeen = true
                #expect(partitions.count == 4)
                #expect(try first.assignment().count == 4)
            }
        }
        #expect(revokeSeen)
        let firstSplit = try await first.pollUntil { _, consumer in
            try consumer.assignment().count == 2 && second.assignment().count == 2
        }
        let secondSplit = try await secondRound
        let firstPartitions = Set(try first.assignment())
        let secondPartitions = Set(try second.assignment())
        #expect(firstPartitions.count == 2 && secondPartitions.count == 2)
        #expect(firstPartitions.isDisjoint(with: secondPartitions))
        #expect(firstSplit.events.contains { if case .assigned(let partitions) = $0 { partitions.count == 2 } else { false } })
        #expect(secondSplit.events.contains { if case .assigned(let partitions) = $0 { partitions.count == 2 } else { false } })

        // The second member leaves; polling concurrently lets the first take part in the rebalance.
        async let takeOver = first.pollUntil { _, consumer in try consumer.assignment().count == 4 }
        await second.close()
        let afterClose = try await takeOver
        #expect(Set(try first.assignment()).count == 4)
        #expect(afterClose.events.last == .assigned((0..<4).map { KafkaTopicPartition(topic: topic, partition: $0) }))
        await first.close()
    }

    @Test("a member killed with SIGKILL mid-batch: the survivor gets its partitions and every uncommitted message")
    func killedMemberIsReplaced() async throws {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("kafka-test-consumer")
        try #require(FileManager.default.isExecutableFile(atPath: executable.path),
                     "build the kafka-test-consumer executable (swift build) next to the test binary")
        // Always a private mock cluster: it expires a member killed with -9 after session.timeout.ms,
        // which not every development broker does (noida-db 0.2.3 never expires it).
        let topic = TestBroker.uniqueName("crash")
        let cluster = try MockKafkaCluster(brokers: 1, topics: [topic: 4])
        let bootstrap = cluster.bootstrapServers
        let group = TestBroker.uniqueName("g")
        let survivor = try KafkaConsumer(configuration: TestBroker.consumerConfiguration(group: group, bootstrapServers: bootstrap))
        try survivor.subscribe(topics: [topic])
        _ = try await survivor.pollUntil { _, consumer in try consumer.assignment().count == 4 }

        let child = Process()
        child.executableURL = executable
        child.arguments = [bootstrap, group, topic]
        let output = ChildOutput()
        let pipe = Pipe()
        child.standardOutput = pipe
        pipe.fileHandleForReading.readabilityHandler = { handle in output.append(handle.availableData) }
        try child.run()
        defer { if child.isRunning { kill(child.processIdentifier, SIGKILL) } }

        // Both members hold two partitions each.
        _ = try await survivor.pollUntil { _, consumer in
            try consumer.assignment().count == 2 && output.lines.contains { $0.hasPrefix("ASSIGNED") }
        }
        #expect(try survivor.assignment().count == 2)

        // 40 messages over all 4 partitions; the child reads its share and never commits.
        for partition: Int32 in 0..<4 { try await produceNumbered(10, to: topic, prefix: "p\(partition)", partition: partition, bootstrapServers: bootstrap) }
        let (survivorFirst, _) = try await survivor.pollUntil { received, _ in
            received.count >= 20 && output.lines.filter { $0.hasPrefix("MSG") }.count >= 20
        }
        try await survivor.commit()
        let childRead = output.lines.filter { $0.hasPrefix("MSG") }
        #expect(survivorFirst.count == 20)
        #expect(childRead.count == 20)

        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()

        // After the session timeout the survivor is alone and re-reads the child's uncommitted messages.
        let (takeOver, events) = try await survivor.pollUntil(timeout: .seconds(60)) { received, consumer in
            try consumer.assignment().count == 4 && received.count >= 20
        }
        #expect(try survivor.assignment().count == 4)
        #expect(events.contains { if case .assigned(let partitions) = $0 { partitions.count == 4 } else { false } })
        let reread = Set(takeOver.map { "MSG \($0.partition) \($0.offset)" })
        #expect(Set(childRead).isSubset(of: reread))
        let all = Set((survivorFirst + takeOver).map { "\($0.partition)/\($0.offset)" })
        #expect(all.count == 40)
        await survivor.close()
        cluster.stop()
    }
}

/// Lines a child process wrote to stdout, collected from a pipe's handler thread.
final class ChildOutput: @unchecked Sendable {
    private let lock = NSLock()
    private var buffer = ""

    func append(_ data: Data) {
        lock.withLock { buffer += String(decoding: data, as: UTF8.self) }
    }

    var lines: [String] {
        lock.withLock { buffer.split(separator: "\n").map(String.init) }
    }
}
