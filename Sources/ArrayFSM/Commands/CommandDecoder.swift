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
    var operation: Result<Command.Operation, OperationError>
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

    static func decodePayload(_ type: CommandType, _ c: KeyedDecodingContainer<CodingKeys>) throws -> Command.Operation {
        switch type {
        case .addArray:
            let p = try c.decode(AddArrayPayload.self, forKey: .payload)
            return .addArray(
                AddArray(workflowID: p.workflow_id, taskTemplateVersionID: p.task_template_version_id,
                         maxConcurrentlyRunning: p.max_concurrently_running ?? .max, name: p.name ?? ""))
        case .recordArrayBatchNum:
            let p = try c.decode(RecordArrayBatchNumPayload.self, forKey: .payload)
            return .recordArrayBatchNum(
                RecordArrayBatchNum(arrayID: p.array_id, taskIDs: p.task_ids, taskResourcesID: p.task_resources_id,
                                    workflowRunID: p.workflow_run_id))
        case .transitionArrayToLaunched:
            let p = try c.decode(LaunchPayload.self, forKey: .payload)
            return .transitionArrayToLaunched(
                TransitionArrayToLaunched(arrayID: p.array_id, batchNumber: p.batch_number, nextReportIncrement: p.next_report_increment))
        case .transitionToKilled:
            let p = try c.decode(BatchPayload.self, forKey: .payload)
            return .transitionToKilled(TransitionToKilled(arrayID: p.array_id, batchNumber: p.batch_number))
        case .instantiateArrayBatch:
            let p = try c.decode(BatchPayload.self, forKey: .payload)
            return .instantiateArrayBatch(InstantiateArrayBatch(arrayID: p.array_id, batchNumber: p.batch_number))
        case .logArraySubmitFailed:
            let p = try c.decode(BatchPayload.self, forKey: .payload)
            return .logArraySubmitFailed(LogArraySubmitFailed(arrayID: p.array_id, batchNumber: p.batch_number))
        case .logArrayDistributorID:
            let p = try c.decode(DistributorIDPayload.self, forKey: .payload)
            if let byStep = p.distributor_ids_by_step {
                guard let batch = p.batch_number else {
                    throw OperationError.invalid("distributor_ids_by_step needs batch_number")
                }
                var steps: [Int32: String] = [:]
                for (key, value) in byStep {
                    guard let step = Int32(key), String(step) == key else {
                        throw OperationError.invalid("distributor_ids_by_step key '\(key.prefix(40))' is not a step id in plain decimal")
                    }
                    steps[step] = value
                }
                return .logArrayDistributorID(LogArrayDistributorID(
                    arrayID: p.array_id, batchNumber: batch, distributorIDsByStep: steps, stdout: p.stdout, stderr: p.stderr))
            }
            let map: [Int64: String]
            if let readAhead = p.readAheadIDs {
                map = readAhead
            } else {
                guard let ids = p.distributor_ids else { throw OperationError.invalid("distributor_ids is required") }
                var decoded: [Int64: String] = [:]
                decoded.reserveCapacity(ids.count)
                for (key, value) in ids {
                    // Canonical decimal only: "05" and "5" would otherwise both name instance 5.
                    guard let id = Int64(key), String(id) == key else {
                        throw OperationError.invalid("distributor_ids key '\(key.prefix(40))' is not a task instance id in plain decimal")
                    }
                    decoded[id] = value
                }
                map = decoded
            }
            return .logArrayDistributorID(LogArrayDistributorID(arrayID: p.array_id, distributorIDs: map, stdout: p.stdout, stderr: p.stderr))
        case .getArrayMaxConcurrentlyRunning:
            let p = try c.decode(MaxConcurrencyPayload.self, forKey: .payload)
            if let arrayID = p.array_id {
                return .getArrayMaxConcurrentlyRunning(GetArrayMaxConcurrentlyRunning(.arrayID(arrayID)))
            }
            guard let workflowID = p.workflow_id, let ttvID = p.task_template_version_id else {
                throw OperationError.invalid("give array_id, or workflow_id and task_template_version_id")
            }
            return .getArrayMaxConcurrentlyRunning(
                GetArrayMaxConcurrentlyRunning(.workflow(workflowID: workflowID, taskTemplateVersionID: ttvID)))
        }
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

// Wire payloads: field names are the contract's.
// swiftlint:disable identifier_name
struct AddArrayPayload: Decodable {
    var workflow_id: Int64
    var task_template_version_id: Int64
    var max_concurrently_running: Int32?
    var name: String?
}

struct RecordArrayBatchNumPayload: Decodable {
    var array_id: Int64
    var task_ids: [Int64]
    var task_resources_id: Int64
    var workflow_run_id: Int64

    /// `task_ids` as ``PayloadReader`` read it, when it could (the message then holds `[]`).
    static let readAhead = CodingUserInfoKey(rawValue: "arrayfsm.taskIDs")!

    enum CodingKeys: String, CodingKey {
        case array_id, task_ids, task_resources_id, workflow_run_id
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        array_id = try c.decode(Int64.self, forKey: .array_id)
        if let ids = decoder.userInfo[Self.readAhead] as? [Int64], c.contains(.task_ids) {
            task_ids = ids
        } else {
            task_ids = try c.decode([Int64].self, forKey: .task_ids)
        }
        task_resources_id = try c.decode(Int64.self, forKey: .task_resources_id)
        workflow_run_id = try c.decode(Int64.self, forKey: .workflow_run_id)
    }
}

struct LaunchPayload: Decodable {
    var array_id: Int64
    var batch_number: Int32
    var next_report_increment: Double
}

struct BatchPayload: Decodable {
    var array_id: Int64
    var batch_number: Int32
}

struct DistributorIDPayload: Decodable {
    var array_id: Int64
    var distributor_ids: [String: String]?
    /// `distributor_ids` as ``PayloadReader`` read it, when it could; then
    /// `distributor_ids` is not decoded again.
    var readAheadIDs: [Int64: String]?
    var batch_number: Int32?
    var distributor_ids_by_step: [String: String]?
    var stdout: String?
    var stderr: String?

    static let readAhead = CodingUserInfoKey(rawValue: "arrayfsm.distributorIDs")!

    enum CodingKeys: String, CodingKey {
        case array_id, distributor_ids, batch_number, distributor_ids_by_step, stdout, stderr
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        array_id = try c.decode(Int64.self, forKey: .array_id)
        if let map = decoder.userInfo[Self.readAhead] as? [Int64: String], c.contains(.distributor_ids) {
            readAheadIDs = map
        } else {
            distributor_ids = try c.decodeIfPresent([String: String].self, forKey: .distributor_ids)
        }
        batch_number = try c.decodeIfPresent(Int32.self, forKey: .batch_number)
        distributor_ids_by_step = try c.decodeIfPresent([String: String].self, forKey: .distributor_ids_by_step)
        stdout = try c.decodeIfPresent(String.self, forKey: .stdout)
        stderr = try c.decodeIfPresent(String.self, forKey: .stderr)
    }
}

struct MaxConcurrencyPayload: Decodable {
    var array_id: Int64?
    var workflow_id: Int64?
    var task_template_version_id: Int64?
}
// swiftlint:enable identifier_name
