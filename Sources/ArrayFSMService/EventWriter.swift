// ArrayFSMService — the processor: command batches from Kafka, one transaction each, the outbox
// and its relay, readiness and metrics. Uses ArrayFSM for the domain and Kafka for the wire.
import ArrayFSM
import Foundation

/// Turns a command's outcome into outbox messages: the result event (split into parts when its
/// id lists are too large), one transition event per group (split likewise), and dead letters.
///
/// Event ids are derived from the command id (`<command_id>:result[:pN]`, `<command_id>:tK[:pN]`),
/// so they are the same every time the same outcome is published.
struct EventWriter: Sendable {
    var topics: Topics
    /// Most ids per event part; 512 KiB at up to 20 bytes per id, with room for the rest.
    var maxIDsPerPart: Int

    init(topics: Topics, maxEventBytes: Int) {
        self.topics = topics
        self.maxIDsPerPart = max(1, (maxEventBytes - 4096) / 21)
    }

    /// The result event's parts, encoded.
    func resultEvents(
        envelope: CommandEnvelope, outcome: Result<ResultPayload, OperationError>, processedAt: Date, durationMS: Double
    ) -> [[UInt8]] {
        let at = Timestamp.string(processedAt)
        switch outcome {
        case .failure(let error):
            let event = ResultEvent(
                eventID: "\(envelope.commandID):result", commandID: envelope.commandID, type: envelope.type, status: .rejected,
                result: nil, error: .init(code: error.code.rawValue, message: error.message), processedAt: at,
                durationMS: durationMS)
            return [event.jsonBytes]
        case .success(let payload):
            let parts = payload.split(maxIDs: maxIDsPerPart)
            return parts.enumerated().map { index, part in
                let event = ResultEvent(
                    eventID: parts.count == 1 ? "\(envelope.commandID):result" : "\(envelope.commandID):result:p\(index + 1)",
                    commandID: envelope.commandID, type: envelope.type, status: .ok, result: part, error: nil,
                    processedAt: at, durationMS: durationMS,
                    part: parts.count == 1 ? nil : index + 1, parts: parts.count == 1 ? nil : parts.count)
                return event.jsonBytes
            }
        }
    }

    /// A refusal that is not the command's result (a reused id, a reply topic not allowed): one
    /// event under an id of its own, since consumers dedupe by event id.
    func refusal(envelope: CommandEnvelope, error: OperationError, eventID: String) -> [UInt8] {
        ResultEvent(
            eventID: eventID, commandID: envelope.commandID, type: envelope.type, status: .rejected, result: nil,
            error: .init(code: error.code.rawValue, message: error.message), processedAt: Timestamp.string(Date()), durationMS: 0
        ).jsonBytes
    }

    /// Outbox messages for the result parts: to the results topic, and to `reply_to` if it is an
    /// allowed reply topic (``Topics/allowsReply(to:)``; the processor refuses commands with any
    /// other, and this keeps every path to the outbox within the allow-list).
    func resultMessages(_ events: [[UInt8]], key: [UInt8]?, replyTo: String?, traceparent: String?) -> [OutboxMessage] {
        let headers = traceparent.map { ["traceparent", $0] } ?? []
        var messages = events.map { OutboxMessage(topic: topics.results, key: key, value: $0, headers: headers) }
        if let replyTo, topics.allowsReply(to: replyTo) {
            messages += events.map { OutboxMessage(topic: replyTo, key: key, value: $0, headers: headers) }
        }
        return messages
    }

    /// Transition events, keyed by array id.
    func transitionMessages(
        commandID: String, transitions: [TransitionGroup], at: Date, traceparent: String?
    ) -> [OutboxMessage] {
        let headers = traceparent.map { ["traceparent", $0] } ?? []
        let when = Timestamp.string(at)
        var messages: [OutboxMessage] = []
        for (index, group) in transitions.enumerated() {
            let chunks = stride(from: 0, to: group.ids.count, by: maxIDsPerPart).map {
                Array(group.ids[$0..<min($0 + maxIDsPerPart, group.ids.count)])
            }
            for (partIndex, ids) in chunks.enumerated() {
                let split = chunks.count > 1
                let event = TransitionEvent(
                    eventID: split ? "\(commandID):t\(index):p\(partIndex + 1)" : "\(commandID):t\(index)",
                    commandID: commandID, arrayID: group.arrayID, batchNumber: group.batchNumber, entity: group.entity.rawValue,
                    from: group.from, to: group.to, ids: ids, count: ids.count, at: when,
                    part: split ? partIndex + 1 : nil, parts: split ? chunks.count : nil)
                messages.append(
                    OutboxMessage(topic: topics.transitions, key: Array(String(group.arrayID).utf8), value: event.jsonBytes,
                                  headers: headers))
            }
        }
        return messages
    }

    /// Dead letters larger than this are cut (librdkafka's producer refuses messages over
    /// 1,000,000 bytes by default, and one unpublishable row would stall the whole outbox).
    static let maxDeadLetterBytes = 900_000
    /// What is kept of a message that was too large.
    static let truncatedDeadLetterBytes = 64 * 1024

    /// The original message, unchanged, with the contract's error headers — except that a value
    /// over ``maxDeadLetterBytes`` keeps its first 64 KiB and says its size in `arrayfsm-original-bytes`.
    func deadLetter(_ message: IncomingCommand, code: String, reason: String) -> OutboxMessage {
        var value = message.value ?? []
        var headers = [
            "arrayfsm-error-code", code,
            "arrayfsm-error-message", reason,
            "arrayfsm-source-topic", message.topic,
            "arrayfsm-source-partition", String(message.partition),
            "arrayfsm-source-offset", String(message.offset),
        ]
        if value.count > Self.maxDeadLetterBytes {
            headers += ["arrayfsm-original-bytes", String(value.count)]
            value = Array(value.prefix(Self.truncatedDeadLetterBytes))
        }
        return OutboxMessage(topic: topics.deadLetters, key: message.key, value: value, headers: headers)
    }
}

/// RFC 3339 timestamps with milliseconds, in UTC.
enum Timestamp {
    static func string(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}
