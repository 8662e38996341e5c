// Kafka — a Swift wrapper over librdkafka (producer, consumer, admin, mock cluster).
// Knows no arrayfsm word and no SQL.
internal import Synchronization

/// Holds the latest statistics report; written from a librdkafka thread.
final class LatestStatisticsBox: Sendable {
    let value = Mutex<KafkaStatistics?>(nil)
}
