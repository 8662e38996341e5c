// ArrayFSMClient — the scheduler's side of the wire contract: commands sent over Kafka, typed
// answers read from a private reply topic. Knows no SQL and nothing of serve's internals.
import Foundation

/// serve's answer to one command: its result event, put back together when it came in parts.
public struct CommandAnswer: Sendable {
    /// The result event's parts (one for most answers), in part order: each one's JSON.
    public var events: [[UInt8]]
    public var commandID: String
    public var type: String
    /// `ok`, or `rejected` with ``rejection``.
    public var isOK: Bool
    /// Why serve refused the command, when it did.
    public var rejection: CommandRejected?
    /// When serve applied the command (`processed_at`), as serve's clock says.
    public var processedAt: Date?
    /// When the last part was published (its Kafka timestamp), milliseconds since 1970.
    public var publishedAtMilliseconds: Int64?
    /// Times the command was sent: 1 unless an attempt timed out and it was sent again.
    public var attempts: Int
    /// When the command was first sent and when its answer was read, by this process's clock.
    public var sentAt: ContinuousClock.Instant
    public var receivedAt: ContinuousClock.Instant

    /// From the first send to the answer read.
    public var roundTrip: Duration { receivedAt - sentAt }

    /// The typed result.
    /// - Throws: ``CommandRejected`` when serve refused the command; `DecodingError` when the
    ///   result is not of `Result`'s shape.
    public func result<Result: CommandResult>(as _: Result.Type = Result.self) throws -> Result {
        if let rejection { throw rejection }
        let decoder = JSONDecoder()
        var merged: Result?
        for event in events {
            let part = try decoder.decode(ResultPart<Result>.self, from: Data(event)).result
            if let earlier = merged { merged = earlier.merging(part) } else { merged = part }
        }
        guard let merged else { throw DecodingError.valueNotFound(Result.self, .init(codingPath: [], debugDescription: "no result")) }
        return merged
    }

    private struct ResultPart<Result: Decodable>: Decodable { var result: Result }
}

/// serve refused a command: `code` is the contract's error code (`unknown_array`,
/// `illegal_transition`, `invalid_payload`, …), `message` says why in words.
public struct CommandRejected: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: String
    public var message: String
    public var commandID: String
    public var type: String

    public var description: String { "\(type) \(commandID) rejected: \(code): \(message)" }
}

/// No answer came before the call's deadline, after `attempts` sends with the same command id.
/// The command may still be applied later; sending it again with the same id is safe.
public struct CommandTimeout: Error, Sendable, Hashable, CustomStringConvertible {
    public var commandID: String
    public var type: String
    public var attempts: Int
    public var waited: Duration

    public var description: String {
        "\(type) \(commandID): no answer after \(attempts) attempt(s) in \(waited); sending it again with the same id is safe"
    }
}

/// The client stopped (its ``ArrayFSMClient/run()`` ended) before the answer came.
public struct ArrayFSMClientStopped: Error, Sendable, CustomStringConvertible {
    public var commandID: String
    public var description: String { "the client stopped before \(commandID) was answered" }
}
