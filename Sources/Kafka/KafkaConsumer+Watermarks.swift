// Kafka — a Swift wrapper over librdkafka (producer, consumer, admin, mock cluster).
// Knows no arrayfsm word and no SQL.
internal import CRdkafka

extension KafkaConsumer {
    /// The partitions of `topic`, from the cluster's metadata.
    public func partitions(of topic: String, timeout: Duration = .seconds(10)) async throws(KafkaError) -> [Int32] {
        let handle = self.handle
        let milliseconds = timeout.milliseconds
        let result = await blockingCall { () -> Result<[Int32], KafkaError> in
            let topicHandle = rd_kafka_topic_new(handle.pointer, topic, nil)
            defer { if let topicHandle { rd_kafka_topic_destroy(topicHandle) } }
            var metadata: UnsafePointer<rd_kafka_metadata>?
            let error = rd_kafka_metadata(handle.pointer, 0, topicHandle, &metadata, milliseconds)
            guard error == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else { return .failure(KafkaError(error)) }
            defer { rd_kafka_metadata_destroy(metadata) }
            guard metadata.pointee.topic_cnt > 0 else { return .success([]) }
            let entry = metadata.pointee.topics[0]
            if entry.err != RD_KAFKA_RESP_ERR_NO_ERROR { return .failure(KafkaError(entry.err)) }
            return .success((0..<Int(entry.partition_cnt)).map { entry.partitions[$0].id }.sorted())
        }
        return try result.get()
    }

    /// The names of every topic the cluster has, from its metadata.
    public func topicNames(timeout: Duration = .seconds(10)) async throws(KafkaError) -> [String] {
        let handle = self.handle
        let milliseconds = timeout.milliseconds
        let result = await blockingCall { () -> Result<[String], KafkaError> in
            var metadata: UnsafePointer<rd_kafka_metadata>?
            let error = rd_kafka_metadata(handle.pointer, 1, nil, &metadata, milliseconds)
            guard error == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else { return .failure(KafkaError(error)) }
            defer { rd_kafka_metadata_destroy(metadata) }
            return .success((0..<Int(metadata.pointee.topic_cnt)).map { String(cString: metadata.pointee.topics[$0].topic) }.sorted())
        }
        return try result.get()
    }

    /// The low and high watermarks (first offset, next offset to be written) of a partition.
    public func watermarks(of partition: KafkaTopicPartition, timeout: Duration = .seconds(10)) async throws(KafkaError)
        -> (low: Int64, high: Int64)
    {
        let handle = self.handle
        let milliseconds = timeout.milliseconds
        let result = await blockingCall { () -> Result<(Int64, Int64), KafkaError> in
            var low: Int64 = 0
            var high: Int64 = 0
            let error = rd_kafka_query_watermark_offsets(handle.pointer, partition.topic, partition.partition, &low, &high, milliseconds)
            guard error == RD_KAFKA_RESP_ERR_NO_ERROR else { return .failure(KafkaError(error)) }
            return .success((low, high))
        }
        let (low, high) = try result.get()
        return (low, high)
    }
}
