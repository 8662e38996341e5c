// Kafka — a Swift wrapper over librdkafka (producer, consumer, admin, mock cluster).
// Knows no arrayfsm word and no SQL.
internal import CRdkafka
public import Logging
internal import Synchronization

/// Produces messages to Kafka; `send` completes when the broker has acknowledged the message.
///
/// Defaults (overridable through the configuration): `enable.idempotence=true` (so `acks=all`)
/// and `linger.ms=5`. Topic handles are created once per topic and held (the least recently used
/// beyond ``topicHandleLimit`` are let go), since producing by topic name alone is several times
/// slower in librdkafka. A dedicated thread serves delivery
/// reports; a full local queue (`_QUEUE_FULL`) is treated as back-pressure: the sender waits and retries.
public final class KafkaProducer: Sendable {
    /// Producer defaults applied under the caller's configuration.
    public static let defaultProperties = ["enable.idempotence": "true", "linger.ms": "5"]

    private let handle: KafkaClientHandle
    private let poller: DeliveryReportPoller
    private let topicHandles: Mutex<TopicHandleCache>
    private let closed = Atomic<Bool>(false)
    private let logger: Logger

    /// Creates a producer and starts its delivery-report thread.
    /// - Parameter topicHandleLimit: topic handles kept at most (see ``topicHandleLimit``).
    public init(configuration: KafkaConfiguration, topicHandleLimit: Int = 1000,
                logger: Logger = Logger(label: "kafka.producer")) throws(KafkaError) {
        self.logger = logger
        self.topicHandleLimit = max(1, topicHandleLimit)
        topicHandles = Mutex(TopicHandleCache(limit: max(1, topicHandleLimit)))
        let configuration = configuration.addingDefaults(Self.defaultProperties)
        handle = try KafkaClientHandle(
            kind: RD_KAFKA_PRODUCER, configuration: configuration,
            context: ClientContext(logger: logger, statisticsHandler: nil)
        ) { conf in
            rd_kafka_conf_set_dr_msg_cb(conf, kafkaDeliveryCallback)
        }
        poller = DeliveryReportPoller(handle: handle, name: "kafka-delivery-reports")
    }

    deinit {
        topicHandles.withLock { $0.destroyAll() }
        poller.requestStop()
    }

    /// Sends one message and returns once the broker acknowledged it.
    /// - Throws: `KafkaError` if the message could not be queued or was not delivered.
    public func send(topic: String, partition: Int32? = nil, key: [UInt8]? = nil, value: [UInt8]?,
                     headers: [KafkaHeader] = []) async throws(KafkaError) {
        let report = try await send([KafkaOutgoingMessage(topic: topic, partition: partition, key: key, value: value, headers: headers)])
        if let failure = report.failures.first { throw failure }
    }

    /// Sends messages and returns once every one of them has a delivery report.
    ///
    /// A message the client refuses to queue (larger than `message.max.bytes`, a partition that
    /// does not exist) is a failure in the report, like one the broker refused; the rest are sent.
    /// - Throws: `KafkaError` only if the producer is closed or a topic handle cannot be created.
    public func send(_ messages: [KafkaOutgoingMessage]) async throws(KafkaError) -> KafkaDeliveryReport {
        let tracker = DeliveryTracker(count: messages.count)
        try await enqueue(messages, tracker: tracker)
        return await tracker.report()
    }

    /// Sends messages from any sequence (copied into an array first); see `send(_:)`.
    public func send(_ messages: some Sequence<KafkaOutgoingMessage>) async throws(KafkaError) -> KafkaDeliveryReport {
        try await send(Array(messages))
    }

    /// Queues messages without waiting for delivery; `completion` runs once, on the delivery
    /// thread (or on the caller's, when every message was refused at queueing), when every
    /// message has a report. Returns as soon as all are queued.
    public func enqueue(_ messages: [KafkaOutgoingMessage],
                        completion: @escaping @Sendable (KafkaDeliveryReport) -> Void) async throws(KafkaError) {
        try await enqueue(messages, tracker: DeliveryTracker(count: messages.count, completion: completion))
    }

    /// Waits until all queued messages are delivered or the timeout passes (`rd_kafka_flush`, run off the cooperative pool).
    public func flush(timeout: Duration = .seconds(10)) async throws(KafkaError) {
        let handle = self.handle
        let milliseconds = timeout.milliseconds
        let result = await blockingCall { rd_kafka_flush(handle.pointer, milliseconds).rawValue }
        try KafkaError.check(rd_kafka_resp_err_t(result))
    }

    /// Flushes, then stops the delivery thread; messages still undelivered fail with `_PURGE_QUEUE`.
    public func close(timeout: Duration = .seconds(10)) async {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        do { try await flush(timeout: timeout) } catch { logger.warning("flush on close: \(error)") }
        await poller.stop()
    }

    /// The producer's fatal error (e.g. an idempotence sequence failure), if one was raised.
    public var currentFatalError: KafkaError? { KafkaError.fatal(of: handle.pointer) }

    // Non-generic on purpose: a generic sequence is not specialised across modules, which cost
    // ~25% more CPU per message in the benchmark.
    private func enqueue(_ messages: [KafkaOutgoingMessage], tracker: DeliveryTracker) async throws(KafkaError) {
        tracker.start()
        var queued = 0
        // Drops the guard count taken by start(), whether or not all messages got queued.
        defer { tracker.dropGuard() }
        guard !closed.load(ordering: .acquiring) else {
            tracker.abandon(messages.count)
            throw KafkaError.closed
        }
        // Each topic's handle is held (not evictable) until every message of the call is queued.
        var held: [String: OpaquePointer] = [:]
        defer { topicHandles.withLock { $0.release(held.keys) } }
        var lastTopic: (name: String, pointer: OpaquePointer)?
        for (index, message) in messages.enumerated() {
            let topic: OpaquePointer
            if let lastTopic, lastTopic.name == message.topic {
                topic = lastTopic.pointer
            } else if let known = held[message.topic] {
                topic = known
                lastTopic = (message.topic, known)
            } else {
                do { topic = try acquireTopicHandle(message.topic) } catch {
                    tracker.abandon(messages.count - queued)
                    throw error
                }
                held[message.topic] = topic
                lastTopic = (message.topic, topic)
            }
            while true {
                let result = Self.produce(message, client: handle.pointer, topic: topic, opaque: tracker.opaque(index))
                if result == RD_KAFKA_RESP_ERR_NO_ERROR { break }
                if result == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                    // Back-pressure: the delivery thread drains the queue meanwhile.
                    try? await Task.sleep(for: .milliseconds(1))
                    continue
                }
                // Refused by the client itself (too large, unknown partition, …): this message's
                // report is the refusal, and the others go on.
                tracker.record(KafkaError(result), index: index)
                break
            }
            queued += 1
        }
    }

    /// Topic handles held at most (least recently used beyond that are destroyed), so a producer
    /// writing to ever new topic names does not grow without bound.
    public let topicHandleLimit: Int

    /// Topic handles cached now (for tests).
    public var cachedTopicHandles: Int { topicHandles.withLock { $0.count } }

    private func acquireTopicHandle(_ name: String) throws(KafkaError) -> OpaquePointer {
        let client = handle.pointer
        let bits = topicHandles.withLock { cache -> UInt in
            cache.acquire(name) {
                guard let created = rd_kafka_topic_new(client, name, nil) else { return 0 }
                return UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(created)))
            }
        }
        guard let pointer = OpaquePointer(bitPattern: bits) else {
            throw KafkaError(rd_kafka_last_error(), message: "cannot create topic handle for \(name)")
        }
        return pointer
    }

    private static func produce(_ message: KafkaOutgoingMessage, client: OpaquePointer, topic: OpaquePointer,
                                opaque: UnsafeMutableRawPointer) -> rd_kafka_resp_err_t {
        let headers = nativeHeaders(message.headers)
        let result = withOptionalBytes(message.value) { value, valueLength in
            withOptionalBytes(message.key) { key, keyLength in
                crdkafka_produce(client, topic, message.partition ?? -1, value, valueLength, key, keyLength, headers, opaque)
            }
        }
        if result != RD_KAFKA_RESP_ERR_NO_ERROR, let headers { rd_kafka_headers_destroy(headers) }
        return result
    }

    private static func nativeHeaders(_ headers: [KafkaHeader]) -> OpaquePointer? {
        guard !headers.isEmpty else { return nil }
        let native = rd_kafka_headers_new(headers.count)
        for header in headers {
            withOptionalBytes(header.value) { value, length in
                _ = rd_kafka_header_add(native, header.name, -1, value, length)
            }
        }
        return native
    }
}

// A non-NULL pointer for empty byte arrays: librdkafka tells an empty key/value from a null one
// only by the pointer, and an empty Swift array may have no base address.
nonisolated(unsafe) private let emptyBytes = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 1)

private func withOptionalBytes<Result>(_ bytes: [UInt8]?, _ body: (UnsafeRawPointer?, Int) -> Result) -> Result {
    guard let bytes else { return body(nil, 0) }
    if bytes.isEmpty { return body(UnsafeRawPointer(emptyBytes), 0) }
    return bytes.withUnsafeBytes { body($0.baseAddress, $0.count) }
}

/// rd_kafka_topic_t pointers by topic name, stored as bit patterns (Mutex can't hold OpaquePointer
/// across isolation), least recently used first out. A handle in use by an `enqueue` is never destroyed.
struct TopicHandleCache: ~Copyable {
    struct Entry {
        var bits: UInt
        var users: Int
        var lastUse: UInt64
    }

    let limit: Int
    private var entries: [String: Entry] = [:]
    private var clock: UInt64 = 0

    init(limit: Int) { self.limit = limit }

    var count: Int { entries.count }

    /// The handle for `name` (made by `create` when missing; 0 if that failed), marked in use.
    mutating func acquire(_ name: String, create: () -> UInt) -> UInt {
        clock += 1
        if var entry = entries[name] {
            entry.users += 1
            entry.lastUse = clock
            entries[name] = entry
            return entry.bits
        }
        let bits = create()
        guard bits != 0 else { return 0 }
        entries[name] = Entry(bits: bits, users: 1, lastUse: clock)
        evict()
        return bits
    }

    /// Marks the handles of `names` no longer in use by one caller.
    mutating func release(_ names: some Sequence<String>) {
        for name in names { entries[name]?.users -= 1 }
        evict()
    }

    /// Destroys the least recently used unused handles while more than `limit` are held. (A linear
    /// scan: it runs only when a new topic pushes the cache over its limit.)
    private mutating func evict() {
        while entries.count > limit {
            guard let victim = entries.filter({ $0.value.users == 0 }).min(by: { $0.value.lastUse < $1.value.lastUse }) else { return }
            entries[victim.key] = nil
            rd_kafka_topic_destroy(OpaquePointer(bitPattern: victim.value.bits))
        }
    }

    mutating func destroyAll() {
        for entry in entries.values { rd_kafka_topic_destroy(OpaquePointer(bitPattern: entry.bits)) }
        entries = [:]
    }
}
