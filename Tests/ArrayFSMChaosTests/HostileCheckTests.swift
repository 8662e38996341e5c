@testable import ArrayFSMChaos
import ArrayFSMLoad
import ArrayFSMService
import ArrayFSMTesting
import ArrayFSMTools
import Testing

/// The hostile scenario's extra checks are not vacuous: given what the topics held (records built
/// here, no broker), each broken promise is reported, and a run that kept them passes.
@Suite struct HostileCheckTests {
    static let unknown = HostileInput.Burst(kind: .unknownTypes, records: [
        TopicDumpRecord(topic: "arrayfsm.commands", partition: -1, offset: -1, timestamp: nil, key: nil,
                        payload: Array(#"{"command_id":"u1","type":"chaos_type_1","payload":{}}"#.utf8), headers: []),
    ])

    static func result(_ json: String) -> KafkaRecord {
        KafkaRecord(value: Array(json.utf8))
    }

    static func check(results: [KafkaRecord], sizes: [String: Int64] = ["arrayfsm.commands": 1, "arrayfsm.results": 1],
                      scrapes: [String] = [#"arrayfsm_commands_total{type="unknown",status="rejected"} 1"#]) -> [String] {
        HostileCheck(bursts: [unknown], topics: Topics(), produced: 1, results: results, transitions: [], deadLetters: [],
                     allowedReplies: [], topicSizes: sizes, parked: [], scrapes: scrapes).check().violations
    }

    static let rejected = result(#"{"event_id":"u1:result","command_id":"u1","status":"rejected","error":{"code":"invalid_argument"}}"#)

    @Test func aRunThatKeptEveryPromisePasses() {
        #expect(Self.check(results: [Self.rejected]) == [])
    }

    @Test func eachBrokenPromiseIsReported() {
        let answered = Self.result(#"{"event_id":"u1:result","command_id":"u1","status":"ok"}"#)
        #expect(Self.check(results: [answered]).contains { $0.contains("expected rejected invalid_argument") })
        #expect(Self.check(results: [Self.rejected], sizes: ["arrayfsm.commands": 1, "other-team.inbox": 2])
            .contains { $0.contains("2 messages in other-team.inbox") })
        #expect(Self.check(results: [Self.rejected], sizes: ["arrayfsm.commands": 3])
            .contains { $0.contains("the commands topic holds 3 messages, producers wrote 1") })
        #expect(Self.check(results: [Self.rejected], scrapes: [String(repeating: "#\n", count: 40_000)])
            .contains { $0.contains("over 65536") })
        #expect(Self.check(results: [Self.rejected], scrapes: [#"arrayfsm_commands_total{type="chaos_type_1",status="rejected"} 1"#])
            .contains { $0.contains(#"type label "chaos_type_1""#) })
        #expect(Self.check(results: [Self.rejected], scrapes: []).contains { $0.contains("no member's /metrics") })
    }
}
