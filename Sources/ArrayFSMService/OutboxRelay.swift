// ArrayFSMService — the processor: command batches from Kafka, one transaction each, the outbox
// and its relay, readiness and metrics. Uses ArrayFSM for the domain and Kafka for the wire.
import ArrayFSM
import Kafka
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Publishes the outbox: reads the oldest rows, produces them with the idempotent producer,
/// and deletes them only after every one has a delivery report.
///
/// A relay publishes while holding a session-level advisory lock, so with several `serve`
/// instances exactly one publishes at a time, in outbox order (which keeps per-key order: one
/// array's commands are applied by one consumer, one after the other). While it leads, it keeps
/// up to ``maxRoundsInFlight`` rounds in flight: waiting for one round's delivery reports before
/// reading the next put a whole broker acknowledgement (~40 ms on the mock cluster) into every
/// event's latency.
///
/// A row whose delivery fails is not deleted: it is tried again after a backoff of its own
/// (100 ms doubling to 5 s), and meanwhile the rows after it with the same topic and key are held
/// back (one key's events keep their commit order) while every other row flows on. Each failure
/// is counted on the row (`attempts`, first/last failure, the error). A row that failed at least
/// ``minimumAttempts`` times, the first at least ``parkAfter`` ago, and last with other rows
/// delivered since its previous failure (so the row is refused, not the broker unreachable) is *parked*: moved with its
/// error to `arrayfsm_outbox_parked`, until `arrayfsm outbox requeue` or `drop`. Its key's later rows then flow.
public final class OutboxRelay: Service, Sendable {
    let database: ArrayDatabase
    let currentProducer: Mutex<KafkaProducer>
    /// Makes a new producer after a gap-less guarantee failure; nil: such a failure stops the relay.
    let renewProducer: (@Sendable () throws -> KafkaProducer)?

    /// The producer publishing now (a new one after a gap-less guarantee failure).
    public var producer: KafkaProducer { currentProducer.withLock { $0 } }

    /// librdkafka properties the relay's producer needs, under the operator's.
    ///
    /// `enable.gapless.guarantee`: when a batch of a partition fails for good (the broker refused
    /// it: too large, not authorised, …), the idempotent producer would otherwise bump its epoch
    /// and deliver the batches after it — a key's later events before its earlier ones, which no
    /// re-publishing can undo. With it the producer fails fatally instead, delivering nothing more;
    /// the relay counts the refused rows, replaces the producer and publishes again in order.
    ///
    /// `message.timeout.ms` stays librdkafka's (300 s; `ARRAYFSM_KAFKA_MESSAGE_TIMEOUT_MS` sets it):
    /// a message that gets no answer (its topic unknown, or refused in a way the client keeps
    /// waiting on) holds its round — the rows delivered beside it stay undeleted — until then.
    /// Not lowered here: a shorter timeout made shutdown drains after a producer replacement time
    /// out (docs/reliability.md).
    ///
    /// `linger.ms` is 0: a round is already a batch (its rows are enqueued together, and what is
    /// enqueued while a request is in flight goes out in the next one), so lingering only delays
    /// every answer. Paced at 1,000 commands/s the 5 ms default cost 4–5 ms at the p50 and p99;
    /// bursts ran as fast either way (docs/benchmarks.md).
    public static let producerProperties = ["enable.gapless.guarantee": "true", "linger.ms": "0"]
    let batchSize: Int
    let idleInterval: Duration
    /// Rounds sent and not yet acknowledged, at most; librdkafka's idempotent producer keeps
    /// their order per partition.
    let maxRoundsInFlight = 4
    /// Guards every database step (not the waits for delivery reports: a broker that is down
    /// delays those legitimately, and undelivered rows simply stay in the outbox).
    let watchdog: StallWatchdog?
    let logger: Logger
    let wakeUp: AsyncStream<Void>.Continuation
    let wakeUps: Mutex<AsyncStream<Void>?>

    /// Any 64-bit constant unique to the relay's lock.
    public static let lockKey: Int64 = 0x6172_7261_7972_6C79  // "arrayrly"

    /// Messages published since start (for metrics).
    public let published = Atomic<Int>(0)
    /// Failed delivery attempts since start (for metrics).
    public let deliveryFailures = Atomic<Int>(0)
    /// Rows this instance parked since start (for metrics).
    public let parked = Atomic<Int>(0)
    /// When the relay last published, found the outbox empty, or found another relay leading (for readiness).
    public let progress = RelayProgress()

    /// How long a row keeps failing before it may be parked.
    public let parkAfter: Duration
    /// Failed attempts a row needs before it may be parked.
    public let minimumAttempts: Int
    /// How long publishing what is left at shutdown, and flushing the producer, may take.
    public let shutdownTimeout: Duration
    /// Set when the shutdown drain ran out of time: flushing the producer again would wait for
    /// the same undeliverable messages.
    let gaveUpDraining = Atomic<Bool>(false)

    let retries = Mutex(Retries())


    /// - Parameters:
    ///   - parkAfter: a row failing at least this long (and ``minimumAttempts`` times, while others
    ///     are delivered) is parked.
    ///   - minimumAttempts: failed attempts before a row may be parked.
    ///   - renewProducer: makes a replacement producer (configured with ``producerProperties``)
    ///     after a gap-less guarantee failure; nil: every fatal producer error stops the relay.
    ///   - shutdownTimeout: the bound of the shutdown drain; past it ``run()`` throws
    ///     ``ShutdownTimedOut`` and the rows left stay in the outbox for the next relay.
    public init(database: ArrayDatabase, producer: KafkaProducer, batchSize: Int = 2000,
                idleInterval: Duration = .milliseconds(100), parkAfter: Duration = .seconds(300), minimumAttempts: Int = 3,
                shutdownTimeout: Duration = .seconds(30),
                renewProducer: (@Sendable () throws -> KafkaProducer)? = nil, watchdog: StallWatchdog? = nil, logger: Logger) {
        self.shutdownTimeout = shutdownTimeout
        self.renewProducer = renewProducer
        self.parkAfter = parkAfter
        self.minimumAttempts = minimumAttempts
        self.database = database
        self.watchdog = watchdog
        self.currentProducer = Mutex(producer)
        self.batchSize = batchSize
        self.idleInterval = idleInterval
        self.logger = logger
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        self.wakeUp = continuation
        self.wakeUps = Mutex(stream)
    }

    /// Tells the relay that new rows were committed (it also looks every `idleInterval`).
    public func notify() {
        wakeUp.yield()
    }

    /// As a service: publishes until the group shuts down gracefully — which reaches the relay
    /// after the consumer has stopped, so no rows come after — then publishes what is left and
    /// flushes the producer within ``shutdownTimeout``.
    ///
    /// - Throws: the producer's fatal error (see ``publishUntilCancelled()``), or
    ///   ``ShutdownTimedOut`` when the drain did not finish (the rows stay for the next relay).
    public func run() async throws {
        // The loop ends before the drain starts: a round in flight holds the relay lock, and the
        // drain must not mistake that for another relay leading.
        try await cancelWhenGracefulShutdown { [self] in try await publishUntilCancelled() }
        guard !Task.isCancelled else { return }
        logger.info("consumer closed; publishing what is left in the outbox")
        let drained = try await withinTimeLimit(shutdownTimeout) { [self] in
            let published = try await drain()
            // The relay's producer now: it replaces its own after a gap-less guarantee failure.
            try? await producer.flush(timeout: .seconds(10))
            return published
        }
        guard let published = drained else {
            gaveUpDraining.store(true, ordering: .relaxed)
            throw ShutdownTimedOut(timeout: shutdownTimeout, eventsLeft: await outboxDepth())
        }
        logger.info("outbox drained", metadata: ["published_at_shutdown": "\(published)"])
    }

    /// The shutdown drain did not finish within its timeout: serve exits non-zero, naming what is
    /// left. Nothing is lost: the rows stay in the outbox for the next relay.
    public struct ShutdownTimedOut: Error, CustomStringConvertible {
        /// The timeout that passed.
        public var timeout: Duration
        /// Events still in the outbox (every instance's); nil when the database did not answer.
        public var eventsLeft: Int?

        public var description: String {
            let left = eventsLeft.map { "\($0) events" } ?? "events (how many: the database did not answer)"
            return "shutdown timed out after \(OutageLog.seconds(timeout)) with \(left) still in the outbox; the next instance publishes them"
        }
    }

    /// Rows in the outbox, or nil when the database does not answer within 5 seconds.
    func outboxDepth() async -> Int? {
        try? await withinTimeLimit(.seconds(5)) { [database, logger] in
            try await database.client.withConnection { try await Outbox.depth(on: $0, logger: logger) }
        } ?? nil
    }

    /// Publishes everything in the outbox now; returns how many messages were published.
    ///
    /// If another instance's relay holds the lock, that relay publishes the rest.
    @discardableResult
    public func drain() async throws -> Int {
        try await asLeader { connection in
            var total = 0
            while true {
                let count = try await publishRound(on: connection)
                total += count
                if count == 0 { return total }
            }
        } ?? 0
    }

    /// Runs `body` holding the relay's session-level advisory lock on a connection of its own, so
    /// one relay publishes at a time without keeping a transaction open while Kafka acknowledges
    /// (an open transaction would hold back vacuum and HOT pruning on the hot tables). Returns nil
    /// when another relay holds the lock.
    func asLeader<Result: Sendable>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result? {
        // A pool that never hands out a connection stalls the relay as surely as a query that
        // never returns.
        let alarm = watchdog.arm("relay lock", logger: logger)
        defer { alarm?.disarm() }
        return try await database.client.withConnection { connection in
            var locked = false
            for try await got in try await connection.query("SELECT pg_try_advisory_lock(\(Self.lockKey))", logger: logger)
                .decode(Bool.self)
            {
                locked = got
            }
            alarm?.disarm()
            guard locked else { return nil }
            do {
                let result = try await body(connection)
                await release(connection)
                return result
            } catch {
                await release(connection)
                throw error
            }
        }
    }

    /// Gives up the lock. A query sent on a connection whose server went away may never return
    /// (postgres-nio drops it once the channel is gone, and nothing cancels it): the unlock waits
    /// at most 5 s, and then, or when it fails, the connection is closed instead, which ends the
    /// session and its lock with it, and the pool does not hand that connection out again.
    private func release(_ connection: PostgresConnection) async {
        guard !connection.isClosed else { return }
        let logger = self.logger
        let released: Void? = try? await withinTimeLimit(.seconds(5)) {
            _ = try await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
        }
        if released == nil {
            logger.warning("the relay's lock connection did not answer its unlock; closing it")
            Task { try? await connection.close() }
        }
    }
}
