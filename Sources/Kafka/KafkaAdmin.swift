// Kafka — a Swift wrapper over librdkafka (producer, consumer, admin, mock cluster).
// Knows no arrayfsm word and no SQL.
internal import CRdkafka
public import Logging

/// Administrative operations on a cluster: creating topics.
public final class KafkaAdmin: Sendable {
    private let handle: KafkaClientHandle

    /// Creates an admin client for the cluster named by `configuration`.
    public init(configuration: KafkaConfiguration, logger: Logger = Logger(label: "kafka.admin")) throws(KafkaError) {
        handle = try KafkaClientHandle(kind: RD_KAFKA_PRODUCER, configuration: configuration,
                                       context: ClientContext(logger: logger, statisticsHandler: nil)) { _ in }
    }

    /// Creates a topic unless it exists: `TOPIC_ALREADY_EXISTS` counts as success, so calling it twice is safe.
    /// Existing topics keep their partition count.
    ///
    /// - Parameter replicationFactor: copies of each partition; -1 (the default) lets the broker
    ///   choose (its `default.replication.factor`; Kafka 2.4+).
    public func createTopicIfMissing(_ name: String, partitions: Int32, replicationFactor: Int32 = -1,
                                     timeout: Duration = .seconds(10)) async throws(KafkaError) {
        let handle = self.handle
        let milliseconds = timeout.milliseconds
        let failure = await blockingCall { () -> KafkaError? in
            Self.createTopic(client: handle.pointer, name: name, partitions: partitions,
                             replicationFactor: replicationFactor, milliseconds: milliseconds)
        }
        if let failure { throw failure }
    }

    private static func createTopic(client: OpaquePointer, name: String, partitions: Int32,
                                    replicationFactor: Int32, milliseconds: Int32) -> KafkaError? {
        var errorText = [CChar](repeating: 0, count: 512)
        guard let newTopic = rd_kafka_NewTopic_new(name, partitions, replicationFactor, &errorText, errorText.count) else {
            return KafkaError(code: RD_KAFKA_RESP_ERR__INVALID_ARG.rawValue, message: String(nulTerminated: errorText))
        }
        defer { rd_kafka_NewTopic_destroy(newTopic) }
        let queue = rd_kafka_queue_new(client)
        defer { rd_kafka_queue_destroy(queue) }
        let options = rd_kafka_AdminOptions_new(client, RD_KAFKA_ADMIN_OP_CREATETOPICS)
        defer { rd_kafka_AdminOptions_destroy(options) }
        _ = rd_kafka_AdminOptions_set_operation_timeout(options, milliseconds, &errorText, errorText.count)
        _ = rd_kafka_AdminOptions_set_request_timeout(options, milliseconds, &errorText, errorText.count)

        var topics: [OpaquePointer?] = [newTopic]
        rd_kafka_CreateTopics(client, &topics, 1, options, queue)
        guard let event = rd_kafka_queue_poll(queue, milliseconds + 1000) else {
            return KafkaError(code: RD_KAFKA_RESP_ERR__TIMED_OUT.rawValue, message: "CreateTopics \(name) timed out")
        }
        defer { rd_kafka_event_destroy(event) }
        let eventError = rd_kafka_event_error(event)
        if eventError != RD_KAFKA_RESP_ERR_NO_ERROR {
            return KafkaError(eventError, message: rd_kafka_event_error_string(event).map { String(cString: $0) })
        }
        var count = 0
        guard let result = rd_kafka_event_CreateTopics_result(event),
              let results = rd_kafka_CreateTopics_result_topics(result, &count) else { return nil }
        for index in 0..<count {
            let error = rd_kafka_topic_result_error(results[index])
            if error != RD_KAFKA_RESP_ERR_NO_ERROR && error != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS {
                return KafkaError(error, message: rd_kafka_topic_result_error_string(results[index]).map { String(cString: $0) })
            }
        }
        return nil
    }
}
