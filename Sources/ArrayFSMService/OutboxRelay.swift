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
    private let currentProducer: Mutex<KafkaProducer>
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
    public static let producerProperties = ["enable.gapless.guarantee": "true"]
    let batchSize: Int
    let idleInterval: Duration
    /// Rounds sent and not yet acknowledged, at most; librdkafka's idempotent producer keeps
    /// their order per partition.
    let maxRoundsInFlight = 4
    /// Guards every database step (not the waits for delivery reports: a broker that is down
    /// delays those legitimately, and undelivered rows simply stay in the outbox).
    let watchdog: StallWatchdog?
    let logger: Logger
    private let wakeUp: AsyncStream<Void>.Continuation
    private let wakeUps: Mutex<AsyncStream<Void>?>

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

    /// A row that failed and waits for its next attempt.
    struct Backoff {
        var topic: String
        var key: [UInt8]?
        var retryAt: ContinuousClock.Instant
        /// When its last failure was settled.
        var failedAt: ContinuousClock.Instant
    }

    /// The leader's per-row state: failed rows by id, and when it last saw a delivery.
    struct Retries {
        var backoffs: [Int64: Backoff] = [:]
        var lastDelivery: ContinuousClock.Instant?

        /// Rows not to read now: backing off until later.
        func waiting(at now: ContinuousClock.Instant) -> Set<Int64> {
            Set(backoffs.lazy.filter { $0.value.retryAt > now }.map(\.key))
        }

        /// Keys held back behind a failed row (null keys have no order to keep).
        var holds: [Outbox.Hold] {
            backoffs.compactMap { id, backoff in backoff.key.map { Outbox.Hold(id: id, topic: backoff.topic, key: $0) } }
        }
    }

    private let retries = Mutex(Retries())

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

    /// Publishes until cancelled; then returns.
    ///
    /// - Throws: the producer's fatal error (e.g. `OUT_OF_ORDER_SEQUENCE_NUMBER` from a broker
    ///   that lost the idempotent producer's state). A producer in that state never delivers
    ///   again, so retrying would only let the outbox grow: the process must restart with a new
    ///   producer. Nothing is lost: undelivered rows stay in the outbox.
    func publishUntilCancelled() async throws {
        guard let stream = wakeUps.withLock({ stream in defer { stream = nil }; return stream }) else {
            preconditionFailure("OutboxRelay runs once")
        }
        var backoff = Duration.milliseconds(100)
        let failures = OutageLog(started: "outbox relay round failed, retrying", ended: "outbox relay publishing again", level: .warning, logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            // A ticker so rows written by other instances are published without a wake-up.
            group.addTask { [idleInterval, wakeUp] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: idleInterval)
                    wakeUp.yield()
                }
            }
            var signals = stream.makeAsyncIterator()
            while await signals.next() != nil {
                if Task.isCancelled { break }
                do {
                    let led = try await asLeader { connection in
                        try await publishPipelined(on: connection) { await signals.next() != nil }
                    }
                    // Another relay leads: its own failures and backoffs apply, not this one's.
                    if led == nil { retries.withLock { $0 = Retries() } }
                    backoff = .milliseconds(100)
                    progress.advanced()
                    failures.succeeded()
                } catch {
                    if let fatal = producer.currentFatalError {
                        logger.critical("the producer failed for good; the relay stops", metadata: ["error": "\(fatal)"])
                        throw fatal  // leaving the group cancels the ticker
                    }
                    failures.failed(error, metadata: ["in": "\(backoff)"])
                    try? await Task.sleep(for: backoff)
                    backoff = min(backoff * 2, .seconds(5))
                }
            }
            group.cancelAll()
        }
    }

    /// Delivery reports of rounds in flight, filled on the producer's delivery thread.
    final class Acknowledgements: Sendable {
        struct Failed {
            var row: Outbox.Row
            var error: KafkaError
            var sentAt: ContinuousClock.Instant
        }
        struct State {
            var delivered: [Int64] = []
            var failed: [Failed] = []
            var rounds = 0
        }
        let state = Mutex(State())

        func record(_ rows: [Outbox.Row], sentAt: ContinuousClock.Instant, _ report: KafkaDeliveryReport) {
            state.withLock { state in
                state.rounds += 1
                if report.isComplete {
                    state.delivered += rows.map(\.id)
                    return
                }
                var failed = Set<Int>()
                for failure in report.failed {
                    failed.insert(failure.index)
                    state.failed.append(Failed(row: rows[failure.index], error: failure.error, sentAt: sentAt))
                }
                for (index, row) in rows.enumerated() where !failed.contains(index) { state.delivered.append(row.id) }
            }
        }

        func take() -> State {
            state.withLock { state in defer { state = State() }; return state }
        }
    }

    /// Leads until the outbox is empty and every round is acknowledged: reads rows not already in
    /// flight, sends them without waiting, settles each round when its reports arrive.
    /// `nextSignal` waits for a commit notification or an acknowledgement; false means stop.
    func publishPipelined(on connection: PostgresConnection, nextSignal: () async -> Bool) async throws {
        let acknowledgements = Acknowledgements()
        var inFlight: Set<Int64> = []
        var rounds = 0
        var stopping = false
        defer {
            // Leaving with rounds in flight (an error, or cancellation): their rows stay in the
            // outbox and are published again by the next leader.
            if rounds > 0 { logger.debug("relay leaves rounds in flight", metadata: ["rounds": "\(rounds)"]) }
        }
        while true {
            if let fatal = producer.currentFatalError {
                try await recover(from: fatal, acknowledgements, on: connection)
            }
            let acknowledged = acknowledgements.take()
            rounds -= acknowledged.rounds
            inFlight.subtract(acknowledged.delivered)
            inFlight.subtract(acknowledged.failed.map(\.row.id))
            try await settle(acknowledged, on: connection)

            var rows: [Outbox.Row] = []
            if rounds < maxRoundsInFlight && !stopping {
                rows = try await readRound(excluding: inFlight, on: connection)
            }
            if !rows.isEmpty {
                inFlight.formUnion(rows.map(\.id))
                rounds += 1
                let sentAt = ContinuousClock.now
                try await producer.enqueue(rows.map(\.outgoing)) { [wakeUp, rows] report in
                    acknowledgements.record(rows, sentAt: sentAt, report)
                    wakeUp.yield()
                }
                if rows.count == batchSize { continue }
            }
            if rounds == 0 && rows.isEmpty { return }
            if stopping {
                // No more signals come: wait for the last acknowledgements by looking again shortly.
                try await Task.sleep(for: .milliseconds(5))
            } else if !(await nextSignal()) {
                stopping = true
            }
        }
    }

    /// The next round: the oldest rows not in flight, not backing off, not behind a failed row of
    /// their key. Forgets failed rows that are gone (deleted or parked by another instance, or an
    /// operator) when the read shows them no longer waiting.
    func readRound(excluding inFlight: Set<Int64>, on connection: PostgresConnection) async throws -> [Outbox.Row] {
        let now = ContinuousClock.now
        let (backingOff, holds) = retries.withLock { ($0.waiting(at: now), $0.holds) }
        let rows = try await watchdog.guarding("outbox read", logger: logger) {
            try await Outbox.oldest(batchSize, excluding: inFlight.union(backingOff), behind: holds, on: connection, logger: logger)
        }
        if !holds.isEmpty && rows.count < batchSize {
            // Every waiting row not excluded was returned: a due failed row not among them is gone.
            let returned = Set(rows.map(\.id))
            retries.withLock { retries in
                for (id, backoff) in retries.backoffs
                where backoff.retryAt <= now && !inFlight.contains(id) && !returned.contains(id) {
                    retries.backoffs[id] = nil
                }
            }
        }
        return rows
    }

    /// Settles acknowledged rounds: deletes the delivered rows, counts the failed ones on their
    /// rows (parking those that qualify) and backs them off.
    /// Failures that only follow from a fatal producer error are not the rows' fault: they are
    /// neither counted nor backed off (the caller deals with the producer).
    func settle(_ acknowledged: Acknowledgements.State, on connection: PostgresConnection) async throws {
        var acknowledged = acknowledged
        acknowledged.failed.removeAll { $0.error.isCollateralOfFatalError }
        try await watchdog.guarding("outbox delete", logger: logger) {
            try await Outbox.delete(acknowledged.delivered, on: connection, logger: logger)
        }
        published.add(acknowledged.delivered.count, ordering: .relaxed)
        progress.published(acknowledged.delivered.count)
        let now = ContinuousClock.now
        if !acknowledged.delivered.isEmpty {
            retries.withLock { retries in
                retries.lastDelivery = now
                guard !retries.backoffs.isEmpty else { return }
                for id in acknowledged.delivered { retries.backoffs[id] = nil }
            }
        }
        guard !acknowledged.failed.isEmpty else { return }
        deliveryFailures.add(acknowledged.failed.count, ordering: .relaxed)
        // Others delivered since this row's previous failure (or, the first time, since it was sent).
        let failures = retries.withLock { retries in
            acknowledged.failed.map { failed in
                let since = retries.backoffs[failed.row.id]?.failedAt ?? failed.sentAt
                return Outbox.Failure(id: failed.row.id, error: "\(failed.error.name): \(failed.error.message)",
                                      othersDelivered: retries.lastDelivery.map { $0 >= since } ?? false)
            }
        }
        let attempts = try await watchdog.guarding("outbox failures", logger: logger) {
            try await Outbox.recordFailures(failures, parkAfter: parkAfter, minimumAttempts: minimumAttempts,
                                            on: connection, logger: logger)
        }
        let rows = Dictionary(acknowledged.failed.map { ($0.row.id, $0) }, uniquingKeysWith: { first, _ in first })
        var parkedNow: [Int64] = []
        retries.withLock { retries in
            for failed in acknowledged.failed { retries.backoffs[failed.row.id] = nil }
            for attempt in attempts {
                guard let failed = rows[attempt.id] else { continue }
                if attempt.parked {
                    parkedNow.append(attempt.id)
                    continue
                }
                retries.backoffs[attempt.id] = Backoff(
                    topic: failed.row.message.topic, key: failed.row.message.key,
                    retryAt: now + Self.retryDelay(afterAttempts: attempt.attempts), failedAt: now)
            }
        }
        let first = acknowledged.failed[0]
        logger.warning("outbox rows not delivered; each is retried after a backoff of its own", metadata: [
            "rows": "\(acknowledged.failed.count)", "id": "\(first.row.id)", "topic": "\(first.row.message.topic)",
            "error": "\(first.error)",
        ])
        if !parkedNow.isEmpty {
            parked.add(parkedNow.count, ordering: .relaxed)
            logger.error("outbox rows parked: they kept failing while others were delivered; see arrayfsm outbox list", metadata: [
                "ids": "\(parkedNow.sorted())", "error": "\(rows[parkedNow[0]]!.error)",
            ])
        }
    }

    /// The relay's producer failed fatally. A gap-less guarantee failure (a batch refused for good,
    /// nothing after it delivered) is recovered from: the old producer is closed, which reports
    /// every message it still held, the refused rows are counted and backed off like any failure
    /// (their keys held back), and a new producer takes over; the rounds in flight are abandoned
    /// and their rows read again, in order. Any other fatal error is rethrown: the relay stops.
    /// - Throws: always — ``ProducerRenewed`` after a recovery, else `fatal`.
    func recover(from fatal: KafkaError, _ acknowledgements: Acknowledgements, on connection: PostgresConnection) async throws -> Never {
        guard fatal.code == KafkaError.gaplessGuaranteeCode, let renewProducer else { throw fatal }
        let old = producer
        await old.close(timeout: .seconds(2))
        try await settle(acknowledgements.take(), on: connection)
        let renewed = try renewProducer()
        currentProducer.withLock { $0 = renewed }
        logger.warning("a batch was refused for good; the relay replaced its producer to keep per-key order", metadata: [
            "error": "\(fatal)",
        ])
        throw ProducerRenewed(cause: fatal)
    }

    /// The relay replaced its producer; the leader starts over with the new one.
    struct ProducerRenewed: Error, CustomStringConvertible {
        var cause: KafkaError
        var description: String { "producer replaced after \(cause)" }
    }

    /// A failed row's wait before its next attempt: 100 ms, doubling, at most 5 s.
    static func retryDelay(afterAttempts attempts: Int) -> Duration {
        min(.milliseconds(100) * (1 << min(max(attempts - 1, 0), 6)), .seconds(5))
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
                try await watchdog.guarding("relay unlock", logger: logger) {
                    try await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
                }
                return result
            } catch {
                // The connection may be broken, which releases the lock too.
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
                throw error
            }
        }
    }

    /// One round, no transaction held across it: read the oldest rows, produce them, await every
    /// delivery report, settle them (delete the delivered, count and back off the failed). A crash
    /// between produce and delete publishes them again (same event ids; consumers dedupe). Returns
    /// rows published: 0 when nothing could be read, or nothing read was delivered.
    func publishRound(on connection: PostgresConnection) async throws -> Int {
        let rows = try await readRound(excluding: [], on: connection)
        guard !rows.isEmpty else { return 0 }
        let sentAt = ContinuousClock.now
        let report = try await producer.send(rows.map(\.outgoing))
        let acknowledgements = Acknowledgements()
        acknowledgements.record(rows, sentAt: sentAt, report)
        let settled = acknowledgements.take()
        try await settle(settled, on: connection)
        if let fatal = producer.currentFatalError { throw fatal }
        return settled.delivered.count
    }
}

extension Outbox.Row {
    /// The row as a Kafka message (headers are stored flat: name, value, name, value, …).
    var outgoing: KafkaOutgoingMessage {
        KafkaOutgoingMessage(
            topic: message.topic, key: message.key, value: message.value,
            headers: stride(from: 0, to: message.headers.count - 1, by: 2).map {
                KafkaHeader(name: message.headers[$0], string: message.headers[$0 + 1])
            })
    }
}
