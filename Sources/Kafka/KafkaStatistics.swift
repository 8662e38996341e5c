// Kafka — a Swift wrapper over librdkafka (producer, consumer, admin, mock cluster).
// Knows no arrayfsm word and no SQL.
internal import Foundation

/// One statistics report from librdkafka (`statistics.interval.ms`), with consumer lag extracted.
public struct KafkaStatistics: Sendable {
    /// The raw JSON document librdkafka emitted.
    public let json: String

    /// Lag (high watermark minus committed/stored position) per assigned partition; partitions
    /// whose lag librdkafka doesn't know yet are left out.
    public var consumerLag: [KafkaTopicPartition: Int64] {
        guard let root = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let topics = root["topics"] as? [String: Any] else { return [:] }
        var lag: [KafkaTopicPartition: Int64] = [:]
        for (topic, topicValue) in topics {
            guard let partitions = (topicValue as? [String: Any])?["partitions"] as? [String: Any] else { continue }
            for (partitionKey, partitionValue) in partitions {
                // Partition -1 is librdkafka's internal "unassigned" bucket.
                guard let partition = Int32(partitionKey), partition >= 0,
                      let value = (partitionValue as? [String: Any])?["consumer_lag"] as? NSNumber,
                      value.int64Value >= 0 else { continue }
                lag[KafkaTopicPartition(topic: topic, partition: partition)] = value.int64Value
            }
        }
        return lag
    }

    /// Sum of `consumerLag` over all partitions.
    public var totalConsumerLag: Int64 { consumerLag.values.reduce(0, +) }
}
