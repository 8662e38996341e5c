// Produces and consumes N messages of ~300 bytes through the Swift wrapper and through plain
// C loops against one broker in one run, and prints msg/s and CPU µs per message for each.
// Usage: kafka-bench [COUNT]   (KAFKA_BOOTSTRAP_SERVERS=host:port to use a running broker;
// otherwise it starts the sibling `arrayfsm dev-broker` in its own process, so broker CPU isn't counted).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CKafkaBench
import Foundation
import Kafka

try await Benchmark.run()


enum Benchmark {
    static func run() async throws {
        let total = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 1_000_000 : 1_000_000
        let messageSize = 300
        // The mock broker keeps only ~5 MiB per partition: produce round-robin over the partitions
// and consume in chunks that fit.
        let chunk = min(total, 25_000)
        let partitions: Int32 = 16
        let runID = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let cTopic = "bench-c-\(runID)"
        let swiftTopic = "bench-swift-\(runID)"

        var brokerProcess: Process?
        let bootstrap: String
        if let servers = ProcessInfo.processInfo.environment["KAFKA_BOOTSTRAP_SERVERS"] {
            bootstrap = servers
            let admin = try KafkaAdmin(configuration: KafkaConfiguration(bootstrapServers: servers))
            try await admin.createTopicIfMissing(cTopic, partitions: partitions)
            try await admin.createTopicIfMissing(swiftTopic, partitions: partitions)
        } else {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
                .appendingPathComponent("arrayfsm")
            process.arguments = ["dev-broker", "--partitions", "\(partitions)", "--topic", cTopic, "--topic", swiftTopic]
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            brokerProcess = process
            var line = Data()
            while let byte = try output.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) {
                line.append(byte)
            }
            bootstrap = String(decoding: line, as: UTF8.self)
        }
        print("broker \(bootstrap), \(total) messages of \(messageSize) B, chunks of \(chunk), \(partitions) partitions")

        var cProduce = Phase(), cConsume = Phase(), swiftProduce = Phase(), swiftConsume = Phase()
        var checksum = 0

        // Plain C.
        do {
            let producer = ckb_producer_new(bootstrap, cTopic)!
            let consumer = ckb_consumer_new(bootstrap, cTopic, "bench-c-\(runID)")!
            var remaining = total
            while remaining > 0 {
                let count = min(chunk, remaining)
                await cProduce.measure { (ckb_producer_run(producer, count, messageSize, partitions), nil) }
                var sum = 0
                await cConsume.measure {
                    var active = 0.0
                    let seen = ckb_consumer_run(consumer, count, &sum, &active)
                    return (seen, active)
                }
                checksum &+= sum
                remaining -= count
            }
            ckb_consumer_destroy(consumer)
            ckb_producer_destroy(producer)
        }

        // Swift wrapper.
        do {
            let producer = try KafkaProducer(configuration: KafkaConfiguration(bootstrapServers: bootstrap))
            let consumer = try KafkaConsumer(configuration: KafkaConfiguration(bootstrapServers: bootstrap, groupID: "bench-swift-\(runID)"))
            try consumer.subscribe(topics: [swiftTopic])
            while try consumer.assignment().isEmpty { _ = try await consumer.poll(timeout: .milliseconds(100)) }
            let payload = [UInt8](repeating: UInt8(ascii: "x"), count: messageSize)
            let batch = (0..<chunk).map { KafkaOutgoingMessage(topic: swiftTopic, partition: Int32($0) % partitions, value: payload) }
            var remaining = total
            while remaining > 0 {
                let count = min(chunk, remaining)
                try await swiftProduce.measure {
                    let report = try await producer.send(count == chunk ? batch : Array(batch.prefix(count)))
                    return (report.delivered, nil)
                }
                var sum = 0
                try await swiftConsume.measure {
                    var seen = 0
                    var firstMessage: ContinuousClock.Instant?
                    var idlePolls = 0
                    while seen < count && idlePolls < 30 {
                        let result = try await consumer.poll(maxMessages: 1000, timeout: .seconds(1))
                        if result.messages.isEmpty { idlePolls += 1; continue }
                        idlePolls = 0
                        if firstMessage == nil { firstMessage = .now }
                        for message in result.messages {
                            sum += message.withUnsafeValue { value in value.map { $0.count + Int($0.first ?? 0) } ?? 0 }
                        }
                        try consumer.storeOffsets(for: result.messages)
                        seen += result.messages.count
                    }
                    let active = firstMessage.map { ($0.duration(to: .now)) } ?? .zero
                    return (seen, Double(active.components.seconds) + Double(active.components.attoseconds) / 1e18)
                }
                checksum &+= sum
                remaining -= count
            }
            await consumer.close()
            await producer.close()
        }

        Self.row("C produce", cProduce)
        Self.row("Swift produce", swiftProduce)
        Self.row("C consume", cConsume)
        Self.row("Swift consume", swiftConsume)
        print(String(format: "ratio Swift/C  produce: %.2f× throughput, %.2f× CPU-efficiency   consume: %.2f× throughput, %.2f× CPU-efficiency",
                     swiftProduce.rate / cProduce.rate, cProduce.cpuPerMessage / swiftProduce.cpuPerMessage,
                     swiftConsume.rate / cConsume.rate, cConsume.cpuPerMessage / swiftConsume.cpuPerMessage))
        print("checksum \(checksum)")

        if let brokerProcess {
            brokerProcess.terminate()
            brokerProcess.waitUntilExit()
        }

    }

    static func row(_ name: String, _ phase: Phase) {
        print(name.padding(toLength: 18, withPad: " ", startingAt: 0),
              String(format: "%9.0f msg/s  %6.2f CPU µs/msg  (%d msgs, %.2f s)", phase.rate, phase.cpuPerMessage, phase.messages, phase.seconds))
    }

}

/// Wall time and process CPU time of one measured phase, summed over chunks.
struct Phase {
    var seconds = 0.0
    var cpuMicroseconds = 0.0
    var messages = 0

    static func cpuNow() -> Double {
        var usage = rusage()
        getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e6 + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec)
    }

    /// Adds one chunk: `body` returns the messages handled and, for consumers, the seconds from
    /// first to last message (so waiting for the first fetch isn't counted); otherwise wall time counts.
    mutating func measure(_ body: () async throws -> (messages: Int, activeSeconds: Double?)) async rethrows {
        let cpu = Phase.cpuNow()
        let start = ContinuousClock.now
        let (handled, active) = try await body()
        messages += handled
        let elapsed = ContinuousClock.now - start
        seconds += active ?? (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        cpuMicroseconds += Phase.cpuNow() - cpu
    }

    var rate: Double { Double(messages) / seconds }
    var cpuPerMessage: Double { cpuMicroseconds / Double(messages) }
}

