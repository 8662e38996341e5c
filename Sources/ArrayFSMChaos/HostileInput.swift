// ArrayFSMChaos — the fault suite: serve processes under kills, restarts, broker and database
// faults and hostile input, checked by an oracle against a clean run. Built on ArrayFSMTools.
import ArrayFSMLoad
import ArrayFSMService
import Foundation

/// What careless or hostile producers send to a shared commands topic, in bursts the `hostile`
/// scenario produces while a normal workload runs. Each message must get the outcome its kind
/// declares, and none may make serve write outside its own topics and the allowed reply topics,
/// loop, or hold up anyone else's commands.
struct HostileInput: Sendable {
    /// A kind of hostile message, with the one outcome every message of the kind must get.
    enum Kind: String, Sendable, CaseIterable, Codable {
        case replyLoop = "reply_to one of serve's own topics"
        case foreignReplyTopic = "reply_to another team's topic"
        case undeliverableReplyTopic = "reply_to an allowed topic the broker refuses"
        case allowedReplyTopic = "reply_to an allowed topic"
        case reusedID = "command id reused with another command"
        case identicalRepeat = "byte-identical repeat"
        case nulString = "NUL in a string"
        case unknownTypes = "distinct unknown types"
        case resultEventReadBack = "result event written to the commands topic"

        /// The outcome (as ``HostileCheck`` names it) each message of this kind must get.
        var expectedOutcome: String {
            switch self {
            case .replyLoop, .foreignReplyTopic: "refused reply_to_not_allowed"
            case .undeliverableReplyTopic: "answered ok; reply parked"
            case .allowedReplyTopic: "answered ok; reply delivered"
            case .reusedID: "refused command_id_reused"
            case .identicalRepeat: "answered again as a duplicate"
            case .nulString: "rejected invalid_argument or dead-lettered bad_envelope"
            case .unknownTypes: "rejected invalid_argument"
            case .resultEventReadBack: "dead-lettered not_a_command"
            }
        }
    }

    /// Messages of one kind, produced together.
    struct Burst: Sendable {
        var kind: Kind
        var records: [TopicDumpRecord]
        /// Command ids that must be applied before this burst is sent (a reuse or a repeat must
        /// come after its original, or it would be the original).
        var after: [String] = []
    }

    /// A reply topic under the default prefix that the scenario's broker accepts.
    static let allowedReplyTopic = "arrayfsm.replies.chaos-scheduler"
    /// A reply topic under the default prefix that the broker refuses (as an ACL would).
    static let undeliverableReplyTopic = "arrayfsm.replies.chaos-denied"
    /// A topic of another team on the same cluster.
    static let foreignTopic = "other-team.inbox"
    /// The broker's error for the undeliverable topic: TOPIC_AUTHORIZATION_FAILED.
    static let undeliverableError: Int32 = 29
    /// How many distinct unknown types the scenario sends, over all its rounds.
    static let unknownTypeCount = 10_000

    /// `rounds` of one burst per kind; `good` is the workload, whose early commands are reused
    /// and repeated.
    static func bursts(rounds: Int, good: [TopicDumpRecord], arrays: [LoadSpec.PlannedArray], topics: Topics,
                       random: inout SplitMix64) -> [Burst] {
        let array = arrays[0].arrayID
        let read = #"{"array_id":\#(array)}"#
        // Originals from the first tenth of the workload: applied early, so later bursts can wait for them.
        let early = good.prefix(max(1, good.count / 10)).compactMap { record -> (TopicDumpRecord, String)? in
            guard let payload = record.payload, let object = EventLedger.object(payload), let id = object["command_id"] as? String else { return nil }
            return (record, id)
        }
        var bursts: [Burst] = []
        for round in 0..<rounds {
            func command(_ id: String, _ type: String = "get_array_max_concurrently_running", payload: String = read,
                         replyTo: String? = nil) -> TopicDumpRecord {
                let reply = replyTo.map { #","reply_to":"\#($0)""# } ?? ""
                return unkeyed(#"{"command_id":"\#(id)","type":"\#(type)"\#(reply),"payload":\#(payload)}"#)
            }
            let prefix = "hostile-r\(round)"
            bursts.append(Burst(kind: .undeliverableReplyTopic, records: (0..<3).map {
                command("\(prefix)-denied-\($0)", replyTo: undeliverableReplyTopic)
            }))
            // The issue's command first: an answer into the commands topic would be read back and answered again, forever.
            bursts.append(Burst(kind: .replyLoop, records: topics.all.flatMap { topic in
                (0..<2).map { command("\(prefix)-loop-\(topic)-\($0)", replyTo: topic) }
            }))
            bursts.append(Burst(kind: .foreignReplyTopic, records: (0..<5).map { command("\(prefix)-foreign-\($0)", replyTo: foreignTopic) }))
            bursts.append(Burst(kind: .allowedReplyTopic, records: (0..<5).map { command("\(prefix)-allowed-\($0)", replyTo: allowedReplyTopic) }))
            let originals = (0..<3).map { _ in early[Int.random(in: 0..<early.count, using: &random)] }
            let distinct = Array(Dictionary(originals.map { ($0.1, $0) }) { first, _ in first }.values.sorted { $0.1 < $1.1 })
            // Another command (unkeyed, so another key too) under an id already applied.
            bursts.append(Burst(kind: .reusedID, records: distinct.map { command($0.1) }, after: distinct.map(\.1)))
            bursts.append(Burst(kind: .identicalRepeat, records: distinct.map(\.0), after: distinct.map(\.1)))
            bursts.append(Burst(kind: .nulString, records: [
                unkeyed(#"{"command_id":"\#(prefix)-nul-\u0000-id","type":"get_array_max_concurrently_running","payload":\#(read)}"#),
                unkeyed(#"{"command_id":"\#(prefix)-nul-type","type":"get_array\u0000max","payload":\#(read)}"#),
                command("\(prefix)-nul-name", "add_array", payload: #"{"workflow_id":\#(arrays[0].workflowID),"task_template_version_id":\#(arrays[0].taskTemplateVersionID),"max_concurrently_running":10000,"name":"a\u0000b"}"#),
                command("\(prefix)-nul-distributor", "log_array_distributor_id", payload: #"{"array_id":\#(array),"batch_number":1,"distributor_ids":{"1":"job\u0000.1"}}"#),
            ]))
            let share = unknownTypeCount / rounds + (round < unknownTypeCount % rounds ? 1 : 0)
            let first = round * (unknownTypeCount / rounds) + min(round, unknownTypeCount % rounds)
            bursts.append(Burst(kind: .unknownTypes, records: (first..<first + share).map { command("hostile-unknown-\($0)", "chaos_type_\($0)") }))
            // What a consumer of the results topic would write if it were pointed at the commands topic.
            bursts.append(Burst(kind: .resultEventReadBack, records: distinct.map { _, id in
                unkeyed(#"{"event_id":"\#(id):result","command_id":"\#(id)","type":"get_array_max_concurrently_running","status":"ok","result":{"max_concurrently_running":10000}}"#)
            }))
        }
        return bursts
    }

    private static func unkeyed(_ json: String) -> TopicDumpRecord {
        TopicDumpRecord(topic: Topics().commands, partition: -1, offset: -1, timestamp: nil, key: nil, payload: Array(json.utf8), headers: [])
    }
}
