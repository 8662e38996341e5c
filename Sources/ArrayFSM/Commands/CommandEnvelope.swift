/// The fields every command carries around its payload (contract: "Command envelope").
public struct CommandEnvelope: Sendable, Hashable {
    /// 1–128 characters, unique per command; the idempotency key.
    public var commandID: String
    public var type: String
    public var version: Int
    public var issuedAt: String?
    /// A topic to publish the result to, besides the results topic.
    public var replyTo: String?

    public static let maxCommandIDLength = 128

    public init(commandID: String, type: String, version: Int = 1, issuedAt: String? = nil, replyTo: String? = nil) {
        self.commandID = commandID
        self.type = type
        self.version = version
        self.issuedAt = issuedAt
        self.replyTo = replyTo
    }
}
