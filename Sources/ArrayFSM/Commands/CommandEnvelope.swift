/// The fields every command carries around its payload (contract: "Command envelope").
public struct CommandEnvelope: Sendable, Hashable {
    /// 1–128 characters, unique per command; the idempotency key.
    public var commandID: String
    public var type: String
    public var version: Int
    public var issuedAt: String?
    /// A topic to publish the result to, besides the results topic.
    public var replyTo: String?
    /// What a repeat of this `command_id` must match to be the same command; nil for commands
    /// built in code rather than decoded from a message.
    public var digest: CommandDigest?

    public static let maxCommandIDLength = 128

    public init(
        commandID: String, type: String, version: Int = 1, issuedAt: String? = nil, replyTo: String? = nil,
        digest: CommandDigest? = nil
    ) {
        self.commandID = commandID
        self.type = type
        self.version = version
        self.issuedAt = issuedAt
        self.replyTo = replyTo
        self.digest = digest
    }
}
