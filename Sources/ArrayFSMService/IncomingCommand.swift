// ArrayFSMService — the processor: command batches from Kafka, one transaction each, the outbox
// and its relay, readiness and metrics. Uses ArrayFSM for the domain and Kafka for the wire.
import Foundation

/// A message read from the commands topic, as the processor needs it: no Kafka types.
public struct IncomingCommand: Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]?
    /// Header names and values; `traceparent` is copied to the events.
    public var headers: [(name: String, value: [UInt8]?)]
    /// When the message was produced (milliseconds since 1970), for end-to-end latency.
    public var timestampMilliseconds: Int64?

    public init(
        topic: String, partition: Int32, offset: Int64, key: [UInt8]?, value: [UInt8]?,
        headers: [(name: String, value: [UInt8]?)] = [], timestampMilliseconds: Int64? = nil
    ) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers
        self.timestampMilliseconds = timestampMilliseconds
    }

    /// The W3C `traceparent` header if it has the W3C shape (55 bytes of hex and dashes); anything
    /// else is dropped rather than copied into the events.
    var traceparent: String? {
        guard let value = headers.first(where: { $0.name == "traceparent" })?.value, value.count == 55,
            value.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) || $0 == 0x2D })
        else { return nil }
        return String(decoding: value, as: UTF8.self)
    }
}
