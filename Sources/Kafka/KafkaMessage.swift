// Kafka — a Swift wrapper over librdkafka (producer, consumer, admin, mock cluster).
// Knows no arrayfsm word and no SQL.
internal import CRdkafka

/// A consumed message. Key, value and headers stay in librdkafka's fetch buffer until every
/// message of the poll result is gone, so `withUnsafeValue` reads them without copying.
public struct KafkaMessage: @unchecked Sendable {
    // Immutable after consume; librdkafka allows reading it from any thread.
    private let pointer: UnsafeMutablePointer<rd_kafka_message_t>
    private let storage: ConsumedMessageStorage

    init(pointer: UnsafeMutablePointer<rd_kafka_message_t>, storage: ConsumedMessageStorage) {
        self.pointer = pointer
        self.storage = storage
    }

    /// Topic the message was read from.
    public var topic: String { String(cString: rd_kafka_topic_name(pointer.pointee.rkt)) }
    /// Partition the message was read from.
    public var partition: Int32 { pointer.pointee.partition }
    /// The message's offset within its partition.
    public var offset: Int64 { pointer.pointee.offset }
    /// Topic and partition together.
    public var topicPartition: KafkaTopicPartition { KafkaTopicPartition(topic: topic, partition: partition) }

    /// Identifies a partition by librdkafka's topic handle, cheaply.
    struct PartitionKey: Hashable {
        var topic: UInt
        var partition: Int32

        /// The topic's name; valid only while a message of that topic is alive.
        var topicName: String { String(cString: rd_kafka_topic_name(OpaquePointer(bitPattern: topic))) }
    }

    var partitionKey: PartitionKey {
        PartitionKey(topic: UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(pointer.pointee.rkt))), partition: pointer.pointee.partition)
    }

    /// Milliseconds since the Unix epoch (create or log-append time), or `nil` if the broker gave none.
    public var timestampMilliseconds: Int64? {
        var kind = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let value = rd_kafka_message_timestamp(pointer, &kind)
        return kind == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE || value < 0 ? nil : value
    }

    /// Calls `body` with the value bytes in place (`nil` for a null value); don't let the buffer escape.
    public func withUnsafeValue<Result>(_ body: (UnsafeRawBufferPointer?) throws -> Result) rethrows -> Result {
        try withExtendedLifetime(storage) {
            guard let payload = pointer.pointee.payload else { return try body(nil) }
            return try body(UnsafeRawBufferPointer(start: payload, count: pointer.pointee.len))
        }
    }

    /// Calls `body` with the key bytes in place (`nil` for a null key); don't let the buffer escape.
    public func withUnsafeKey<Result>(_ body: (UnsafeRawBufferPointer?) throws -> Result) rethrows -> Result {
        try withExtendedLifetime(storage) {
            guard let key = pointer.pointee.key else { return try body(nil) }
            return try body(UnsafeRawBufferPointer(start: key, count: pointer.pointee.key_len))
        }
    }

    /// A copy of the value, `nil` for a null value.
    public var value: [UInt8]? { withUnsafeValue { $0.map { Array($0) } } }
    /// A copy of the key, `nil` for a null key.
    public var key: [UInt8]? { withUnsafeKey { $0.map { Array($0) } } }
    /// The value decoded as UTF-8, `nil` for a null value.
    public var valueString: String? { withUnsafeValue { $0.map { String(decoding: $0, as: UTF8.self) } } }
    /// The key decoded as UTF-8, `nil` for a null key.
    public var keyString: String? { withUnsafeKey { $0.map { String(decoding: $0, as: UTF8.self) } } }

    /// Copies of all headers, in wire order.
    public var headers: [KafkaHeader] {
        withExtendedLifetime(storage) {
            var native: OpaquePointer?
            guard rd_kafka_message_headers(pointer, &native) == RD_KAFKA_RESP_ERR_NO_ERROR, let native else { return [] }
            var result: [KafkaHeader] = []
            var name: UnsafePointer<CChar>?
            var value: UnsafeRawPointer?
            var size = 0
            var index = 0
            while rd_kafka_header_get_all(native, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }
                result.append(KafkaHeader(name: name.map { String(cString: $0) } ?? "", value: bytes))
                index += 1
            }
            return result
        }
    }
}

/// Owns the `rd_kafka_message_t`s of one poll result and destroys them together; it also keeps
/// the client alive, because librdkafka requires messages to be destroyed before their client.
final class ConsumedMessageStorage: @unchecked Sendable {
    let pointers: [UnsafeMutablePointer<rd_kafka_message_t>]
    private let handle: KafkaClientHandle

    init(pointers: [UnsafeMutablePointer<rd_kafka_message_t>], handle: KafkaClientHandle) {
        self.pointers = pointers
        self.handle = handle
    }

    deinit {
        for pointer in pointers { rd_kafka_message_destroy(pointer) }
    }
}
