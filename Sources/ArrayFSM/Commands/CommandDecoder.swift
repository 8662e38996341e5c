// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
import Foundation

/// Turns a message value into a ``Command``, or says why it cannot.
///
/// Two kinds of failure, as the contract separates them:
/// - ``Undecodable``: not a JSON object with a usable `command_id` and `type` — no result event can
///   be correlated, so the message goes to the dead-letter topic;
/// - ``Rejected``: the envelope is usable but the command is not (unknown type, wrong payload) —
///   answered with a `rejected` result event.
///
/// `Codable` decides what is valid: types are strict (`true` is not an id, `1.5` is not a batch
/// number), and a payload error names the field. The one large member of a large command is read
/// from the bytes first (``PayloadReader``), and `Codable` parses the rest.
public struct CommandDecoder: Sendable {
    /// Largest message accepted, checked before parsing.
    public var maxMessageBytes: Int

    public init(maxMessageBytes: Int = 1 << 20) {
        self.maxMessageBytes = maxMessageBytes
    }

    /// The message cannot be answered with a result event.
    public struct Undecodable: Error, Sendable, Hashable {
        /// `too_large`, `not_json`, `not_an_object` or `bad_envelope`.
        public var code: String
        public var message: String
    }

    /// The envelope is usable; the command is refused with `error`.
    public struct Rejected: Error, Sendable {
        public var envelope: CommandEnvelope
        public var error: OperationError
    }

    /// Decodes `data`, the value of a message with `key`; throws ``Undecodable`` or ``Rejected``.
    public func decode(_ data: Data, key: [UInt8]? = nil) throws -> Command {
        guard data.count <= maxMessageBytes else {
            throw Undecodable(code: "too_large", message: "message of \(data.count) bytes exceeds the \(maxMessageBytes)-byte limit")
        }
        let bytes = [UInt8](data)
        let topLevel = PayloadReader.topLevel(bytes)
        let wire: WireCommand
        do {
            let decoder = JSONDecoder()
            if let topLevel, let (key, value, rest) = Self.readAhead(bytes, topLevel) {
                decoder.userInfo[key] = value
                wire = try decoder.decode(WireCommand.self, from: rest)
            } else {
                wire = try decoder.decode(WireCommand.self, from: data)
            }
        } catch let DecodingError.typeMismatch(_, context) where context.codingPath.isEmpty {
            throw Undecodable(code: "not_an_object", message: "the message is JSON but not an object")
        } catch let DecodingError.valueNotFound(_, context) where context.codingPath.isEmpty {
            throw Undecodable(code: "not_an_object", message: "the message is JSON null, not an object")
        } catch {
            throw Undecodable(code: "not_json", message: "the message is not valid UTF-8 JSON")
        }
        // Bytes, not characters: "a" with thousands of combining marks is one character, and a NUL
        // is a character PostgreSQL's text refuses; either would fail every write of the answer.
        guard let commandID = wire.commandID, Self.isStorableName(commandID, maxBytes: CommandEnvelope.maxCommandIDLength) else {
            throw Undecodable(
                code: "bad_envelope", message: "command_id must be a string of 1–\(CommandEnvelope.maxCommandIDLength) UTF-8 bytes without NUL")
        }
        guard let type = wire.type, Self.isStorableName(type, maxBytes: 128) else {
            throw Undecodable(code: "bad_envelope", message: "type must be a string of 1–128 UTF-8 bytes without NUL")
        }
        guard wire.hasPayload else {
            // A result event read back, or anything else that is not addressed to serve: answering
            // it would only add another message for someone to misread.
            throw Undecodable(code: "not_a_command", message: "the message has command_id and type but no payload: not a command")
        }
        let digest = CommandDigest(type: type, key: key, message: bytes, payload: topLevel?.payload)
        if let replyTo = wire.replyTo, !Self.isTopicName(replyTo) {
            throw Rejected(
                envelope: CommandEnvelope(commandID: commandID, type: type, version: wire.version ?? 1, issuedAt: wire.issuedAt, replyTo: nil,
                                          digest: digest),
                error: .invalid("reply_to must be a Kafka topic name: 1–249 of A–Z a–z 0–9 . _ -"))
        }
        let envelope = CommandEnvelope(
            commandID: commandID, type: type, version: wire.version ?? 1, issuedAt: wire.issuedAt, replyTo: wire.replyTo, digest: digest)
        switch wire.operation {
        case .success(let operation):
            return Command(envelope: envelope, operation: operation)
        case .failure(let error):
            throw Rejected(envelope: envelope, error: error)
        }
    }
}

extension CommandDecoder {
    /// The large member of a large message that names its command type — a distributor-id map
    /// or task ids — read ahead of `Codable` (see ``PayloadReader``): the `userInfo` key and value
    /// its payload type takes it from, and the message with the member emptied, for `Codable`;
    /// nil for every other message.
    static func readAhead(_ bytes: [UInt8], _ topLevel: PayloadReader.TopLevel)
        -> (key: CodingUserInfoKey, value: any Sendable, rest: Data)?
    {
        guard bytes.count > 4096 else { return nil }  // small members cost JSONDecoder little
        switch PayloadReader.readAhead(bytes, topLevel) {
        case .distributorIDs(let map, let range):
            return (DistributorIDPayload.readAhead, map, Data(PayloadReader.spliced(bytes, removing: range, with: "{}")))
        case .taskIDs(let ids, let range):
            return (RecordArrayBatchNumPayload.readAhead, ids, Data(PayloadReader.spliced(bytes, removing: range, with: "[]")))
        case nil:
            return nil
        }
    }

    static func isStorableName(_ text: String, maxBytes: Int) -> Bool {
        !text.isEmpty && text.utf8.count <= maxBytes && !text.utf8.contains(0)
    }

    /// Kafka's legal topic names.
    static func isTopicName(_ text: String) -> Bool {
        (1...249).contains(text.utf8.count)
            && text.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == 0x2E || byte == 0x5F || byte == 0x2D
            }
    }
}

/// The JSON shape of a command. Envelope fields are read leniently (a wrong one is reported, not
/// thrown) so that a command with a usable id can always be answered.
struct WireCommand: Decodable {
    var commandID: String?
    var type: String?
    var version: Int?
    var issuedAt: String?
    var replyTo: String?
    var operation: Result<any CommandOperation, OperationError>
    /// Whether the object has a `payload` member at all (of any type).
    var hasPayload = false

    enum CodingKeys: String, CodingKey {
        case commandID = "command_id", type, version, issuedAt = "issued_at", replyTo = "reply_to", payload
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        commandID = try? container.decodeIfPresent(String.self, forKey: .commandID)
        type = try? container.decodeIfPresent(String.self, forKey: .type)
        issuedAt = try? container.decodeIfPresent(String.self, forKey: .issuedAt)
        replyTo = try? container.decodeIfPresent(String.self, forKey: .replyTo)
        hasPayload = container.contains(.payload)
        let versionResult = Result { try container.decodeIfPresent(Int.self, forKey: .version) }
        version = (try? versionResult.get()) ?? nil
        operation = .failure(.invalid("unreachable"))
        guard let type else { return }
        guard let commandType = CommandType(rawValue: type) else {
            operation = .failure(
                .invalid("unknown command type '\(type.prefix(64))'; known: \(CommandType.allCases.map(\.rawValue).joined(separator: ", "))"))
            return
        }
        if case .failure = versionResult {
            operation = .failure(.invalid("version must be an integer"))
            return
        }
        guard (version ?? 1) == 1 else {
            operation = .failure(.invalid("unsupported version \(version ?? 0) of \(type); this server speaks version 1"))
            return
        }
        guard container.contains(.payload) else {
            operation = .failure(.invalid("payload is required"))
            return
        }
        do {
            operation = .success(try Self.decodePayload(commandType, container))
        } catch let error as OperationError {
            operation = .failure(error)
        } catch let error as DecodingError {
            operation = .failure(.invalid(Self.describe(error)))
        } catch {
            operation = .failure(.invalid("payload: \(error)"))
        }
    }

    /// The decoder's table: the operation each command type asks for.
    static func operationType(of type: CommandType) -> any CommandOperation.Type {
        switch type {
        case .addArray: AddArray.self
        case .recordArrayBatchNum: RecordArrayBatchNum.self
        case .transitionArrayToLaunched: TransitionArrayToLaunched.self
        case .transitionToKilled: TransitionToKilled.self
        case .instantiateArrayBatch: InstantiateArrayBatch.self
        case .logArraySubmitFailed: LogArraySubmitFailed.self
        case .logArrayDistributorID: LogArrayDistributorID.self
        case .getArrayMaxConcurrentlyRunning: GetArrayMaxConcurrentlyRunning.self
        case .instantiateTaskInstances: InstantiateTaskInstances.self
        }
    }

    static func decodePayload(_ type: CommandType, _ c: KeyedDecodingContainer<CodingKeys>) throws -> any CommandOperation {
        try operationType(of: type).decode(from: c, forKey: .payload)
    }

    /// "payload.task_ids[3]: expected an integer, found a string" — what a caller can act on.
    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().dropFirst().description
        }
        switch error {
        case .keyNotFound(let key, let context):
            let parent = path(context)
            return "\(parent.isEmpty ? "" : parent + ".")\(key.stringValue) is required"
        case .typeMismatch(let type, let context):
            return "\(path(context)): expected \(Self.name(type))"
        case .valueNotFound(let type, let context):
            return "\(path(context)): expected \(Self.name(type)), found null"
        case .dataCorrupted(let context):
            return "\(path(context)): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }

    static func name(_ type: Any.Type) -> String {
        switch type {
        case is Int64.Type, is Int32.Type, is Int.Type: "an integer"
        case is Double.Type: "a number"
        case is String.Type: "a string"
        case is [Int64].Type: "an array of integers"
        default: "\(type)"
        }
    }
}
