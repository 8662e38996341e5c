/// A message header: a name and an optional (possibly null) byte value.
public struct KafkaHeader: Sendable, Hashable {
    /// Header name; names may repeat within one message.
    public var name: String
    /// Header value; `nil` is a null value on the wire.
    public var value: [UInt8]?

    /// Creates a header with raw bytes.
    public init(name: String, value: [UInt8]?) {
        self.name = name
        self.value = value
    }

    /// Creates a header with a UTF-8 string value.
    public init(name: String, string: String) {
        self.init(name: name, value: Array(string.utf8))
    }
}
