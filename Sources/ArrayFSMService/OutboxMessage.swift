/// A message waiting in the outbox table to be published.
public struct OutboxMessage: Sendable, Hashable {
    public var topic: String
    public var key: [UInt8]?
    public var value: [UInt8]
    /// Flat name/value pairs.
    public var headers: [String]

    public init(topic: String, key: [UInt8]?, value: [UInt8], headers: [String] = []) {
        self.topic = topic
        self.key = key
        self.value = value
        self.headers = headers
    }
}
