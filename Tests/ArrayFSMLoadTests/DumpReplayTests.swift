import ArrayFSMLoad
import ArrayFSMTesting
import ArrayFSMTools
import Foundation
import Kafka
import Testing

@Suite struct DumpReplayTests {
    let logger = TestPostgres.logger

    /// Messages with keys spread over partitions, headers, null and binary values.
    func sampleMessages(topic: String) -> [KafkaOutgoingMessage] {
        (0..<300).map { index in
            let key: [UInt8]? = index % 50 == 7 ? nil : Array("k\(index % 13)".utf8)
            let value: [UInt8]? = switch index % 10 {
            case 3: nil
            case 5: [0xFF, 0x00, 0xFE, UInt8(index % 256)]
            default: Array(#"{"command_id":"c\#(index)","n":\#(index)}"#.utf8)
            }
            let headers = index % 4 == 0 ? [KafkaHeader(name: "traceparent", string: "00-\(index)-01"), KafkaHeader(name: "empty", value: nil)] : []
            return KafkaOutgoingMessage(topic: topic, key: key, value: value, headers: headers)
        }
    }

    func dump(_ bootstrap: String, _ topic: String) async throws -> [TopicDumpRecord] {
        var records: [TopicDumpRecord] = []
        try await Dumper(bootstrapServers: bootstrap, topic: topic).dump(logger: logger) { records.append($0) }
        return records
    }

    /// (payload, headers) in order, per key — what replay promises to keep. Messages without a key
    /// are spread over partitions and have no order: they compare as a sorted list.
    func perKey(_ records: [TopicDumpRecord]) -> [String: [String]] {
        var result: [String: [String]] = [:]
        for record in records.sorted(by: { ($0.partition, $0.offset) < ($1.partition, $1.offset) }) {
            let key = record.key.map { String(decoding: $0, as: UTF8.self) } ?? "<null>"
            let payload = record.payload.map { Data($0).base64EncodedString() } ?? "null"
            result[key, default: []].append("\(payload) \(record.headers.map { "\($0.name)=\($0.value.map { Data($0).base64EncodedString() } ?? "null")" })")
        }
        result["<null>"]?.sort()
        return result
    }

    @Test func dumpReplayDumpRoundTripsPayloadsKeysAndHeadersInPerKeyOrder() async throws {
        let cluster = try MockKafkaCluster(brokers: 1, topics: ["source": 4, "copy": 4])
        defer { cluster.stop() }
        let producer = try KafkaProducer(configuration: KafkaConfiguration(bootstrapServers: cluster.bootstrapServers))
        let report = try await producer.send(sampleMessages(topic: "source"))
        #expect(report.isComplete)

        let first = try await dump(cluster.bootstrapServers, "source")
        #expect(first.count == 300)
        // Through the text format and back, as a file would carry it.
        let lines = first.map { $0.line() }
        let parsed = try lines.map { try TopicDumpRecord(line: Substring($0)) }
        #expect(parsed == first)

        let sent = try await Replayer(producer: producer, topic: "copy").replay(lines: lines.map { Substring($0) })
        #expect(sent == 300)
        let second = try await dump(cluster.bootstrapServers, "copy")
        #expect(second.count == 300)
        #expect(perKey(second) == perKey(first))
        await producer.close()
    }

    @Test func replayReadsARealKcatDump() async throws {
        let cluster = try MockKafkaCluster(brokers: 1, topics: ["from-kcat": 2, "replayed": 2])
        defer { cluster.stop() }
        let producer = try KafkaProducer(configuration: KafkaConfiguration(bootstrapServers: cluster.bootstrapServers))
        let messages = sampleMessages(topic: "from-kcat").filter { $0.value.map { String(validating: $0, as: UTF8.self) != nil } ?? false }
        #expect(try await producer.send(messages).isComplete)

        let kcat = try ChildProcess(["/usr/bin/kcat", "-b", cluster.bootstrapServers, "-C", "-J", "-e", "-q", "-t", "from-kcat"])
        #expect(await kcat.wait(timeout: .seconds(60)) == 0)
        let kcatLines = kcat.output.split(separator: "\n").filter { $0.hasPrefix("{") }
        #expect(kcatLines.count == messages.count)

        try await Replayer(producer: producer, topic: "replayed").replay(lines: kcatLines)
        let replayed = try await dump(cluster.bootstrapServers, "replayed")
        let original = try await dump(cluster.bootstrapServers, "from-kcat")
        #expect(perKey(replayed) == perKey(original))
        await producer.close()
    }

    @Test func rateLimitedReplayTakesAboutAsLongAsTheRateSays() async throws {
        let cluster = try MockKafkaCluster(brokers: 1, topics: ["paced": 1])
        defer { cluster.stop() }
        let producer = try KafkaProducer(configuration: KafkaConfiguration(bootstrapServers: cluster.bootstrapServers))
        let lines = (0..<50).map { TopicDumpRecord(topic: "x", partition: 0, offset: Int64($0), timestamp: nil, key: nil,
                                                   payload: Array("m\($0)".utf8)).line() }
        let start = ContinuousClock.now
        try await Replayer(producer: producer, topic: "paced", pace: .rate(100)).replay(lines: lines.map { Substring($0) })
        let elapsed = ContinuousClock.now - start
        #expect(elapsed >= .milliseconds(450), "50 messages at 100/s take about half a second, took \(elapsed)")
        #expect(try await dump(cluster.bootstrapServers, "paced").count == 50)
        await producer.close()
    }
}
