// Kafka — a Swift wrapper over librdkafka (producer, consumer, admin, mock cluster).
// Knows no arrayfsm word and no SQL.
internal import CRdkafka

/// One partition of one topic.
public struct KafkaTopicPartition: Sendable, Hashable, CustomStringConvertible {
    /// Topic name.
    public var topic: String
    /// Partition number within the topic.
    public var partition: Int32

    /// Creates a topic-partition pair.
    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public var description: String { "\(topic)[\(partition)]" }
}

/// A native `rd_kafka_topic_partition_list_t` owned by Swift, destroyed on deinit.
final class NativePartitionList {
    let pointer: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>

    init(_ partitions: some Collection<KafkaTopicPartition>, offsets: [Int64]? = nil) {
        pointer = rd_kafka_topic_partition_list_new(Int32(partitions.count))
        for (index, item) in partitions.enumerated() {
            let element = rd_kafka_topic_partition_list_add(pointer, item.topic, item.partition)!
            if let offsets { element.pointee.offset = offsets[index] }
        }
    }

    deinit { rd_kafka_topic_partition_list_destroy(pointer) }

    /// Converts a borrowed native list into Swift values.
    static func partitions(of list: UnsafePointer<rd_kafka_topic_partition_list_t>?) -> [KafkaTopicPartition] {
        guard let list, let elements = list.pointee.elems else { return [] }
        return (0..<Int(list.pointee.cnt)).map {
            KafkaTopicPartition(topic: String(cString: elements[$0].topic), partition: elements[$0].partition)
        }
    }

    /// The first per-partition error of a list an operation filled in.
    var firstError: KafkaError? {
        guard let elements = pointer.pointee.elems else { return nil }
        for index in 0..<Int(pointer.pointee.cnt) where elements[index].err != RD_KAFKA_RESP_ERR_NO_ERROR {
            let item = elements[index]
            let base = KafkaError(item.err)
            return KafkaError(code: base.code, message: "\(String(cString: item.topic))[\(item.partition)]: \(base.message)")
        }
        return nil
    }
}
