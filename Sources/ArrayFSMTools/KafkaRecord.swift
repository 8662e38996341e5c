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

    public init(partition: Int32, offset: Int64, key: [UInt8]?, value: [UInt8]?, headers: [KafkaHeader] = [],
                timestampMilliseconds: Int64? = nil) {
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers
        self.timestampMilliseconds = timestampMilliseconds
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
