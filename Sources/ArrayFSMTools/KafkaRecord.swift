// ArrayFSMTools: a consumed message copied out of librdkafka, for tools and tests to inspect.
import Foundation
import Kafka

/// A consumed message, copied.
public struct KafkaRecord: Sendable {
    public var partition: Int32
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]?
    public var headers: [KafkaHeader]
    /// The message's timestamp (CreateTime: when the producer sent it), milliseconds since 1970.
    public var timestampMilliseconds: Int64?

    /// A record as a test writes one: the value (and key) alone, at offset 0 of partition 0.
    public init(value: [UInt8], key: [UInt8]? = nil) {
        (partition, offset, headers, timestampMilliseconds) = (0, 0, [], nil)
        self.key = key
        self.value = value
    }

    /// Copies `message`.
    public init(_ message: KafkaMessage) {
        timestampMilliseconds = message.timestampMilliseconds
        partition = message.partition
        offset = message.offset
        key = message.key
        value = message.value
        headers = message.headers
    }

    /// The value parsed as a JSON object.
    public var json: [String: Any] {
        (value.flatMap { try? JSONSerialization.jsonObject(with: Data($0)) as? [String: Any] }) ?? [:]
    }

    /// A header's value as text.
    public func header(_ name: String) -> String? {
        headers.first { $0.name == name }?.value.map { String(decoding: $0, as: UTF8.self) }
    }
}
