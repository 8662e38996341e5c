// ArrayFSMChaos — the fault suite: serve processes under kills, restarts, broker and database
// faults and hostile input, checked by an oracle against a clean run. Built on ArrayFSMTools.
import Foundation

/// What the events say, reduced to what two runs of the same workload must agree on: per command,
/// its distinct result events and its answer; per command, how many ids moved per transition; the
/// distinct dead letters; per key, the order of its result and transition events. Re-published
/// copies (same `event_id`) count once.
struct EventLedger: Sendable {
    /// Command id → distinct result event ids (a multi-part result counts as one event).
    var resultEvents: [String: Set<String>] = [:]
    /// Command id → `ok`, or `rejected:<code>`.
    var answers: [String: String] = [:]
    /// Command id → "entity from→to" → ids moved.
    var transitions: [String: [String: Int]] = [:]
    /// Command id → refusals that are not the command's result (a reused id, a reply topic not
    /// allowed), as "event id code": they carry event ids of their own.
    var refusals: [String: Set<String>] = [:]
    /// Dead letters, by where the message came from.
    var deadLetters: Set<String> = []
    /// "topic key" → event ids in the order first seen (the clean run: outbox order, which is
    /// commit order; the chaos run: offset order in the key's partition). Repeats are left out.
    var orderByKey: [String: [String]] = [:]
    private var seenTransitionEvents: Set<String> = []
    private var seenByKey: [String: Set<String>] = [:]

    /// Notes an event of `topic` with `key` in the order it was written or read.
    /// Events without a key have no order to keep (the partitioner spreads them) and are left out.
    mutating func addInOrder(topic: String, key: [UInt8]?, _ value: [UInt8]) {
        guard let key, let eventID = Self.object(value)?["event_id"] as? String else { return }
        let name = "\(topic) \(String(decoding: key, as: UTF8.self))"
        guard seenByKey[name, default: []].insert(eventID).inserted else { return }
        orderByKey[name, default: []].append(eventID)
    }

    /// Per key, the first place where `observed` has two events in the other order than this
    /// (expected) ledger; events only one side has are left out (they are reported as missing or
    /// extra by the other checks). Empty when every key's order matches.
    func orderViolations(in observed: EventLedger) -> [String] {
        var violations: [String] = []
        for (key, expected) in orderByKey.sorted(by: { $0.key < $1.key }) {
            let got = observed.orderByKey[key] ?? []
            let common = Set(expected).intersection(got)
            let mine = expected.filter(common.contains)
            let theirs = got.filter(common.contains)
            guard let at = mine.indices.first(where: { mine[$0] != theirs[$0] }) else { continue }
            violations.append("key \(key): event \(theirs[at]) published before \(mine[at]), the clean run committed them the other way round")
        }
        return violations
    }

    mutating func addResult(_ value: [UInt8]) {
        guard let event = Self.object(value), let commandID = event["command_id"] as? String,
              let eventID = event["event_id"] as? String else { return }
        let code = (event["error"] as? [String: Any])?["code"] as? String
        // `<command>:result` or `<command>:result:pN` for part N; anything else is a refusal.
        guard eventID == "\(commandID):result" || eventID.hasPrefix("\(commandID):result:p") else {
            refusals[commandID, default: []].insert("\(eventID) \(code ?? "?")")
            return
        }
        let base = eventID.hasSuffix(":result") ? eventID : String(eventID[..<(eventID.range(of: ":result:p")?.upperBound ?? eventID.endIndex)])
        resultEvents[commandID, default: []].insert(base)
        if let status = event["status"] as? String {
            answers[commandID] = code.map { "\(status):\($0)" } ?? status
        }
    }

    mutating func addTransition(_ value: [UInt8]) {
        guard let event = Self.object(value), let commandID = event["command_id"] as? String,
              let eventID = event["event_id"] as? String, seenTransitionEvents.insert(eventID).inserted else { return }
        let key = "\(event["entity"] as? String ?? "?") \(event["from"] as? String ?? "new")→\(event["to"] as? String ?? "?")"
        transitions[commandID, default: [:]][key, default: 0] += (event["count"] as? Int) ?? 0
    }

    mutating func addDeadLetter(source: String) {
        deadLetters.insert(source)
    }

    static func object(_ value: [UInt8]) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(value))) as? [String: Any]
    }
}
