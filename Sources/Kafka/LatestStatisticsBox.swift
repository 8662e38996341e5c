internal import Synchronization

/// Holds the latest statistics report; written from a librdkafka thread.
final class LatestStatisticsBox: Sendable {
    let value = Mutex<KafkaStatistics?>(nil)
}
