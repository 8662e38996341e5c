// Kafka — a Swift wrapper over librdkafka (producer, consumer, admin, mock cluster).
// Knows no arrayfsm word and no SQL.
internal import CRdkafka
public import Logging
internal import Synchronization

/// A consumer-group member that reads batches of messages with at-least-once offset handling.
///
/// Defaults (overridable through the configuration): `enable.auto.offset.store=false` (offsets
/// move only when the caller calls `storeOffsets` for processed messages; `enable.auto.commit`
/// then commits stored offsets periodically), `auto.offset.reset=earliest` and the eager
/// `range` assignor. The eager assignor is deliberate: with librdkafka 2.0.2 the
/// `cooperative-sticky` assignor aborts the process when a consumer closes before its first
/// assignment (librdkafka issue #4312).
public final class KafkaConsumer: Sendable {
    /// Consumer defaults applied under the caller's configuration.
    public static let defaultProperties = [
        "enable.auto.offset.store": "false",
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "range",
    ]

    let handle: KafkaClientHandle
    private let loop: ConsumerPollLoop

    /// Creates a consumer; `configuration` must have a group id.
    /// - Parameter onStatistics: called on a librdkafka thread every `statistics.interval.ms`, if that is set.
    public init(configuration: KafkaConfiguration, logger: Logger = Logger(label: "kafka.consumer"),
                onStatistics: (@Sendable (KafkaStatistics) -> Void)? = nil) throws(KafkaError) {
        guard configuration.groupID != nil else {
            throw KafkaError(code: RD_KAFKA_RESP_ERR__INVALID_ARG.rawValue, message: "a consumer needs group.id")
        }
        let store = LatestStatisticsBox()
        let loop = ConsumerPollLoop(logger: logger, statisticsHandler: { statistics in
            store.value.withLock { $0 = statistics }
            onStatistics?(statistics)
        })
        handle = try KafkaClientHandle(
            kind: RD_KAFKA_CONSUMER,
            configuration: configuration.addingDefaults(Self.defaultProperties),
            context: loop
        ) { conf in
            rd_kafka_conf_set_rebalance_cb(conf, kafkaRebalanceCallback)
        }
        // Route all events (rebalances included) to the consumer queue served by consumer_poll.
        rd_kafka_poll_set_consumer(handle.pointer)
        self.loop = loop
        self.statistics = store
        loop.start(handle: handle)
    }

    private let statistics: LatestStatisticsBox

    deinit { loop.requestClose() }

    /// Joins the group and subscribes to `topics` (replacing any previous subscription).
    public func subscribe(topics: [String]) throws(KafkaError) {
        let list = rd_kafka_topic_partition_list_new(Int32(topics.count))
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for topic in topics { rd_kafka_topic_partition_list_add(list, topic, -1) }
        try KafkaError.check(rd_kafka_subscribe(handle.pointer, list))
    }

    /// Waits up to `timeout` for the first message, then takes whatever else is ready, up to
    /// `maxMessages`. Runs on the consumer's own thread, not the cooperative pool.
    ///
    /// A returned `.revoked` event means the partitions are released on the next call to `poll`
    /// (after committing stored offsets): store offsets for the finished work before calling it.
    /// - Throws: the client's fatal error, or `KafkaError` if closed.
    public func poll(maxMessages: Int = 1000, timeout: Duration = .milliseconds(100)) async throws(KafkaError) -> KafkaPollResult {
        let result = await withCheckedContinuation { continuation in
            loop.submit(.init(maxMessages: max(1, maxMessages), timeout: timeout, continuation: continuation))
        }
        return try result.get()
    }

    /// Marks these messages as processed: the next commit records offset + 1 for each partition.
    /// - Throws: `KafkaError` with `stateCode` for a partition no longer assigned (expect redelivery).
    public func storeOffsets(for messages: some Sequence<KafkaMessage>) throws(KafkaError) {
        // Keyed by the native topic handle so no topic String is built per message; the handles
        // stay valid while `messages` (and so their storage) are alive.
        var next: [KafkaMessage.PartitionKey: Int64] = [:]
        for message in messages {
            let key = message.partitionKey
            let offset = message.offset + 1
            if let existing = next[key], existing >= offset { continue }
            next[key] = offset
        }
        try withExtendedLifetime(messages) { () throws(KafkaError) in
            try storeOffsets(Dictionary(uniqueKeysWithValues: next.map { key, offset in
                (KafkaTopicPartition(topic: key.topicName, partition: key.partition), offset)
            }))
        }
    }

    /// Stores explicit next offsets (the offset of the next message to read) per partition.
    public func storeOffsets(_ nextOffsets: [KafkaTopicPartition: Int64]) throws(KafkaError) {
        guard !nextOffsets.isEmpty else { return }
        let entries = Array(nextOffsets)
        let list = NativePartitionList(entries.map(\.key), offsets: entries.map(\.value))
        try KafkaError.check(rd_kafka_offsets_store(handle.pointer, list.pointer))
        if let failure = list.firstError { throw failure }
    }

    /// Commits the stored offsets synchronously (off the cooperative pool). Nothing stored is not an error.
    public func commit() async throws(KafkaError) {
        let handle = self.handle
        let result = await blockingCall { rd_kafka_commit(handle.pointer, nil, 0).rawValue }
        let code = rd_kafka_resp_err_t(result)
        if code != RD_KAFKA_RESP_ERR__NO_OFFSET { try KafkaError.check(code) }
    }

    /// The group's committed offsets for `partitions` (a missing entry means none committed).
    public func committedOffsets(for partitions: [KafkaTopicPartition], timeout: Duration = .seconds(10)) async throws(KafkaError) -> [KafkaTopicPartition: Int64] {
        let handle = self.handle
        let milliseconds = timeout.milliseconds
        let result = await blockingCall { () -> Result<[KafkaTopicPartition: Int64], KafkaError> in
            let list = NativePartitionList(partitions)
            let code = rd_kafka_committed(handle.pointer, list.pointer, milliseconds)
            guard code == RD_KAFKA_RESP_ERR_NO_ERROR else { return .failure(KafkaError(code)) }
            var offsets: [KafkaTopicPartition: Int64] = [:]
            for index in 0..<Int(list.pointer.pointee.cnt) {
                let item = list.pointer.pointee.elems[index]
                if item.offset >= 0 {
                    offsets[KafkaTopicPartition(topic: String(cString: item.topic), partition: item.partition)] = item.offset
                }
            }
            return .success(offsets)
        }
        return try result.get()
    }

    /// Reads these partitions from the given offsets without joining the group: a manual
    /// assignment, with no coordinator and no rebalances. For tools that read a topic whole; a
    /// group member uses ``subscribe(topics:)``.
    public func assign(_ offsets: [KafkaTopicPartition: Int64]) throws(KafkaError) {
        let entries = Array(offsets)
        let list = NativePartitionList(entries.map(\.key), offsets: entries.map(\.value))
        try KafkaError.check(rd_kafka_assign(handle.pointer, list.pointer))
    }

    /// Moves the read position of assigned partitions (e.g. back to the first unprocessed offset of a failed batch).
    public func seek(_ offsets: [KafkaTopicPartition: Int64], timeout: Duration = .seconds(10)) async throws(KafkaError) {
        let handle = self.handle
        let entries = Array(offsets)
        let milliseconds = timeout.milliseconds
        let failure = await blockingCall { () -> KafkaError? in
            let list = NativePartitionList(entries.map(\.key), offsets: entries.map(\.value))
            if let error = rd_kafka_seek_partitions(handle.pointer, list.pointer, milliseconds) {
                return KafkaError(consuming: error)
            }
            return list.firstError
        }
        if let failure { throw failure }
    }

    /// Stops fetching from these partitions (the consumer stays in the group; keep polling).
    public func pause(_ partitions: [KafkaTopicPartition]) throws(KafkaError) {
        let list = NativePartitionList(partitions)
        try KafkaError.check(rd_kafka_pause_partitions(handle.pointer, list.pointer))
        if let failure = list.firstError { throw failure }
    }

    /// Resumes fetching from paused partitions.
    public func resume(_ partitions: [KafkaTopicPartition]) throws(KafkaError) {
        let list = NativePartitionList(partitions)
        try KafkaError.check(rd_kafka_resume_partitions(handle.pointer, list.pointer))
        if let failure = list.firstError { throw failure }
    }

    /// The partitions currently assigned to this consumer.
    public func assignment() throws(KafkaError) -> [KafkaTopicPartition] {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        try KafkaError.check(rd_kafka_assignment(handle.pointer, &list))
        defer { if let list { rd_kafka_topic_partition_list_destroy(list) } }
        return NativePartitionList.partitions(of: list)
    }

    /// The most recent statistics report (needs `statistics.interval.ms`).
    public var latestStatistics: KafkaStatistics? { statistics.value.withLock { $0 } }

    /// The consumer's fatal error, if librdkafka raised one; the consumer must then be recreated.
    public var currentFatalError: KafkaError? { KafkaError.fatal(of: handle.pointer) }

    /// Leaves the group (revoking partitions, committing stored offsets) and stops the poll thread.
    /// Runs off the cooperative pool; later polls throw.
    public func close() async {
        await loop.close()
    }
}
