// ArrayFSMChaos — the fault suite: serve processes under kills, restarts, broker and database
// faults and hostile input, checked by an oracle against a clean run. Built on ArrayFSMTools.
import ArrayFSM
import ArrayFSMService
import ArrayFSMTools
import Foundation

/// The `hostile` scenario's promises beyond the clean-run comparison: each hostile message got
/// the outcome its kind declares; serve wrote nowhere but its own topics and the allowed reply
/// topics, and never into its commands topic; `/metrics` stayed small, one type label for every
/// unknown type.
struct HostileCheck {
    var bursts: [HostileInput.Burst]
    var topics: Topics
    /// Messages the scenario produced to the commands topic (the workload and every burst).
    var produced: Int
    /// What the topics of the run held at the end.
    var results: [KafkaRecord]
    var transitions: [KafkaRecord]
    var deadLetters: [KafkaRecord]
    var allowedReplies: [KafkaRecord]
    /// Every topic the cluster has → the messages it holds.
    var topicSizes: [String: Int64]
    /// Values of the outbox rows parked on the undeliverable reply topic.
    var parked: [[UInt8]]
    /// Each member's `/metrics` at the end.
    var scrapes: [String]

    /// Largest `/metrics` exposition allowed: a producer's strings must not grow it.
    static let maxExpositionBytes = 64 * 1024

    /// Violations, and per kind: messages, outcomes observed (outcome → count).
    func check() -> (violations: [String], outcomes: [HostileInput.Kind: (count: Int, outcomes: [String: Int])]) {
        var violations: [String] = []
        var eventsByCommand: [String: [String: Int]] = [:]  // command id → event id → copies
        var statusByEvent: [String: String] = [:]
        for record in results {
            guard let value = record.value, let event = EventLedger.object(value), let command = event["command_id"] as? String,
                  let eventID = event["event_id"] as? String else { continue }
            eventsByCommand[command, default: [:]][eventID, default: 0] += 1
            let code = (event["error"] as? [String: Any])?["code"] as? String
            statusByEvent[eventID] = [event["status"] as? String ?? "?", code].compactMap { $0 }.joined(separator: " ")
        }
        var deadLetterCodes: [[UInt8]: String] = [:]
        for record in deadLetters {
            deadLetterCodes[record.value ?? []] = record.header("arrayfsm-error-code") ?? "?"
        }
        let replyEvents = Set(allowedReplies.compactMap { $0.value.flatMap(EventLedger.object)?["event_id"] as? String })
        let parkedEvents = Set(parked.compactMap { EventLedger.object($0)?["event_id"] as? String })
        // Answers on topics no answer may go to: a transitions record with a status, a dead-letter
        // topic record without the error headers every dead letter has.
        let misplaced = Set((transitions.filter { $0.value.flatMap(EventLedger.object)?["status"] != nil }
                             + deadLetters.filter { $0.header("arrayfsm-error-code") == nil })
            .compactMap { $0.value.flatMap(EventLedger.object)?["command_id"] as? String })

        var outcomes: [HostileInput.Kind: (count: Int, outcomes: [String: Int])] = [:]
        for burst in bursts {
            for record in burst.records {
                let payload = record.payload ?? []
                let id = EventLedger.object(payload)?["command_id"] as? String ?? "?"
                let events = eventsByCommand[id] ?? [:]
                let outcome: String
                if let code = deadLetterCodes[payload] {
                    outcome = "dead-lettered \(code)"
                } else {
                    switch burst.kind {
                    case .reusedID:
                        outcome = events.keys.contains { $0.hasPrefix("\(id):reused:") } ? "refused command_id_reused" : "no refusal"
                    case .identicalRepeat:
                        outcome = (events["\(id):result"] ?? 0) >= 2 ? "answered again as a duplicate" : "not answered again"
                    default:
                        if events["\(id):reply_to_not_allowed"] != nil {
                            outcome = "refused reply_to_not_allowed"
                        } else if let status = statusByEvent["\(id):result"] {
                            switch burst.kind {
                            case .allowedReplyTopic: outcome = "answered \(status); reply \(replyEvents.contains("\(id):result") ? "delivered" : "missing")"
                            case .undeliverableReplyTopic: outcome = "answered \(status); reply \(parkedEvents.contains("\(id):result") ? "parked" : "not parked")"
                            default: outcome = "\(status == "ok" ? "answered" : "") \(status)".trimmingCharacters(in: .whitespaces)
                            }
                        } else {
                            outcome = "no answer"
                        }
                    }
                }
                outcomes[burst.kind, default: (0, [:])].count += 1
                outcomes[burst.kind, default: (0, [:])].outcomes[outcome, default: 0] += 1
                let expected = burst.kind.expectedOutcome
                if !(expected == outcome || (burst.kind == .nulString && expected.components(separatedBy: " or ").contains(outcome))) {
                    violations.append("\(burst.kind.rawValue): command \(id.debugDescription) \(outcome), expected \(expected)")
                }
                if misplaced.contains(id) {
                    violations.append("\(burst.kind.rawValue): an answer to \(id.debugDescription) was written to the transitions or dead-letter topic")
                }
            }
        }
        let unexpected = replyEvents.subtracting(bursts.filter { $0.kind == .allowedReplyTopic }.flatMap(\.records).compactMap {
            (EventLedger.object($0.payload ?? [])?["command_id"] as? String).map { "\($0):result" }
        })
        if !unexpected.isEmpty { violations.append("\(unexpected.count) events on \(HostileInput.allowedReplyTopic) that no command asked for") }

        let allowed = Set(topics.all + [HostileInput.allowedReplyTopic, HostileInput.undeliverableReplyTopic,
                                         topics.replyPrefix + ChaosRun.workloadClientID])
        for (topic, size) in topicSizes.sorted(by: { $0.key < $1.key }) where size > 0 && !allowed.contains(topic) && !topic.hasPrefix("__") {
            violations.append("\(size) messages in \(topic): serve may write only its own topics and the allowed reply topics")
        }
        if let commands = topicSizes[topics.commands], commands != Int64(produced) {
            violations.append("the commands topic holds \(commands) messages, producers wrote \(produced)")
        }
        let known = Set(CommandType.allCases.map(\.rawValue) + ["unknown"])
        for (member, exposition) in scrapes.enumerated() {
            if exposition.utf8.count > Self.maxExpositionBytes {
                violations.append("member \(member): /metrics is \(exposition.utf8.count) bytes, over \(Self.maxExpositionBytes)")
            }
            let labels = Set(exposition.split(separator: "\n").compactMap { line -> String? in
                guard !line.hasPrefix("#"), let start = line.range(of: #"type=""#) else { return nil }
                return String(line[start.upperBound...].prefix { $0 != "\"" })
            })
            for label in labels.subtracting(known).sorted().prefix(3) {
                violations.append("member \(member): /metrics has a type label \(label.debugDescription) (only known types and \"unknown\")")
            }
        }
        if scrapes.isEmpty { violations.append("no member's /metrics could be read") }
        return (violations, outcomes)
    }
}
