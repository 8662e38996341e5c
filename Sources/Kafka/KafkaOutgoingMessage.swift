/// A message to produce.
public struct KafkaOutgoingMessage: Sendable {
    /// Destination topic.
    public var topic: String
    /// Destination partition, or `nil` to let the partitioner choose (by key hash when a key is set).
    public var partition: Int32?
    /// Key bytes; `nil` is a null key, `[]` an empty one.
    public var key: [UInt8]?
    /// Value bytes; `nil` is a null value (a tombstone), `[]` an empty one.
    public var value: [UInt8]?
    /// Headers, in order.
    public var headers: [KafkaHeader]

    /// Creates a message.
    public init(topic: String, partition: Int32? = nil, key: [UInt8]? = nil, value: [UInt8]?, headers: [KafkaHeader] = []) {
        self.topic = topic
        self.partition = partition
        self.key = key
        self.value = value
        self.headers = headers
    }
}
