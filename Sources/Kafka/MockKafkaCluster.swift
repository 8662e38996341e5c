// Kafka — a Swift wrapper over librdkafka (producer, consumer, admin, mock cluster).
// Knows no arrayfsm word and no SQL.
internal import CRdkafka

/// An in-process Kafka-protocol cluster from librdkafka's mock broker, for development and tests.
///
/// Listeners are on 127.0.0.1 with random ports; any client (another process, kcat) can use
/// `bootstrapServers`. It lacks CreateTopics: create topics with `createTopic`. Each partition
/// keeps only ~5 MiB / 100k messages, so a late consumer may silently skip older ones. State is
/// in memory and gone after `stop()`.
public final class MockKafkaCluster: @unchecked Sendable {
    // The rd_kafka_t that owns the mock cluster's threads.
    private let owner: OpaquePointer
    private var cluster: OpaquePointer?

    /// The `host:port,…` list to hand to clients.
    public let bootstrapServers: String
    /// Number of brokers; their ids are 1…brokerCount.
    public let brokerCount: Int

    /// Starts `brokers` brokers and creates `topics` (name → partition count).
    public init(brokers: Int = 1, topics: [String: Int32] = [:]) throws(KafkaError) {
        let conf = rd_kafka_conf_new()
        var errorText = [CChar](repeating: 0, count: 512)
        // Keep the owner handle quiet: it never talks to the cluster itself.
        _ = rd_kafka_conf_set(conf, "log_level", "3", &errorText, errorText.count)
        guard let owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errorText, errorText.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(code: RD_KAFKA_RESP_ERR__FAIL.rawValue, message: String(nulTerminated: errorText))
        }
        guard let cluster = rd_kafka_mock_cluster_new(owner, Int32(brokers)) else {
            rd_kafka_destroy(owner)
            throw KafkaError(code: RD_KAFKA_RESP_ERR__FAIL.rawValue, message: "cannot start the mock cluster")
        }
        self.owner = owner
        self.cluster = cluster
        self.brokerCount = brokers
        self.bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
        for (name, partitions) in topics.sorted(by: { $0.key < $1.key }) {
            try createTopic(name, partitions: partitions)
        }
    }

    deinit { stop() }

    /// Creates a topic (replication factor = min(3, brokers)).
    public func createTopic(_ name: String, partitions: Int32) throws(KafkaError) {
        guard let cluster else { throw KafkaError.closed }
        try KafkaError.check(rd_kafka_mock_topic_create(cluster, name, partitions, Int32(min(3, brokerCount))))
    }

    /// Makes the cluster answer metadata requests for `topic` with this error code (creating the
    /// topic if missing), e.g. 29 (TOPIC_AUTHORIZATION_FAILED) for a topic an ACL denies: clients
    /// cannot produce to it. 0 clears the error.
    public func setTopicError(_ topic: String, code: Int32) throws(KafkaError) {
        guard let cluster else { throw KafkaError.closed }
        rd_kafka_mock_topic_set_error(cluster, topic, rd_kafka_resp_err_t(rawValue: code))
    }

    /// Takes a broker (id 1…brokerCount) down: its connections close and it refuses new ones.
    public func setBrokerDown(_ id: Int32) throws(KafkaError) {
        guard let cluster else { throw KafkaError.closed }
        try KafkaError.check(rd_kafka_mock_broker_set_down(cluster, id))
    }

    /// Brings a broker taken down back up.
    public func setBrokerUp(_ id: Int32) throws(KafkaError) {
        guard let cluster else { throw KafkaError.closed }
        try KafkaError.check(rd_kafka_mock_broker_set_up(cluster, id))
    }

    /// Makes the cluster answer the next `errors.count` requests of one kind (a Kafka API key,
    /// e.g. 0 for Produce) with these error codes, in order: a broker's refusals, for tests.
    public func pushRequestErrors(apiKey: Int16, _ errors: [Int32]) throws(KafkaError) {
        guard let cluster else { throw KafkaError.closed }
        var codes = errors.map { rd_kafka_resp_err_t(rawValue: $0) }
        rd_kafka_mock_push_request_errors_array(cluster, apiKey, codes.count, &codes)
    }

    /// Forgets the errors pushed for one kind of request and not yet answered.
    public func clearRequestErrors(apiKey: Int16) throws(KafkaError) {
        guard let cluster else { throw KafkaError.closed }
        rd_kafka_mock_clear_request_errors(cluster, apiKey)
    }

    /// Stops all brokers; clients still connected see transport errors. Safe to call twice.
    /// Not thread-safe against concurrent calls of the other methods.
    public func stop() {
        guard let cluster else { return }
        self.cluster = nil
        rd_kafka_mock_cluster_destroy(cluster)
        rd_kafka_destroy(owner)
    }
}
