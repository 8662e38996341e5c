import ArrayFSM
import Kafka
import Logging
import PostgresNIO
import Synchronization

/// Publishes the outbox: reads the oldest rows, produces them with the idempotent producer,
/// and deletes them only after every one has a delivery report.
///
/// A relay publishes while holding a session-level advisory lock, so with several `serve`
/// instances exactly one publishes at a time, in outbox order (which keeps per-key order: one
/// array's commands are applied by one consumer, one after the other). While it leads, it keeps
/// up to ``maxRoundsInFlight`` rounds in flight: waiting for one round's delivery reports before
/// reading the next put a whole broker acknowledgement (~40 ms on the mock cluster) into every
/// event's latency. A round that fails deletes nothing: its rows are published again (same
/// `event_id`s; consumers dedupe).
public final class OutboxRelay: Sendable {
    let database: ArrayDatabase
    let producer: KafkaProducer
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
    static let lockKey: Int64 = 0x6172_7261_7972_6C79  // "arrayrly"

    /// Messages published since start (for metrics).
    public let published = Atomic<Int>(0)
    /// When the relay last published, found the outbox empty, or found another relay leading (for readiness).
    public let progress = RelayProgress()

    public init(database: ArrayDatabase, producer: KafkaProducer, batchSize: Int = 2000,
                idleInterval: Duration = .milliseconds(100), watchdog: StallWatchdog? = nil, logger: Logger) {
        self.database = database
        self.watchdog = watchdog
        self.producer = producer
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

    /// Publishes until cancelled; then returns (call ``drain()`` to empty the outbox first).
    ///
    /// - Throws: the producer's fatal error (e.g. `OUT_OF_ORDER_SEQUENCE_NUMBER` from a broker
    ///   that lost the idempotent producer's state). A producer in that state never delivers
    ///   again, so retrying would only let the outbox grow: the process must restart with a new
    ///   producer. Nothing is lost: undelivered rows stay in the outbox.
    public func run() async throws {
        guard let stream = wakeUps.withLock({ stream in defer { stream = nil }; return stream }) else {
            preconditionFailure("OutboxRelay.run() called twice")
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
                    _ = try await asLeader { connection in
                        try await publishPipelined(on: connection) { await signals.next() != nil }
                    }
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
        struct State {
            var delivered: [Int64] = []
            var rounds = 0
            var failure: KafkaError?
        }
        let state = Mutex(State())

        func record(_ ids: [Int64], _ report: KafkaDeliveryReport) {
            state.withLock { state in
                state.rounds += 1
                if report.isComplete { state.delivered += ids } else { state.failure = state.failure ?? report.failures.first }
            }
        }

        func take() -> State {
            state.withLock { state in defer { state = State() }; return state }
        }
    }

    /// Leads until the outbox is empty and every round is acknowledged: reads rows not already in
    /// flight, sends them without waiting, deletes each round's rows when its reports arrive.
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
            let acknowledged = acknowledgements.take()
            rounds -= acknowledged.rounds
            inFlight.subtract(acknowledged.delivered)
            try await watchdog.guarding("outbox delete", logger: logger) {
                try await Outbox.delete(acknowledged.delivered, on: connection, logger: logger)
            }
            published.add(acknowledged.delivered.count, ordering: .relaxed)
            progress.published(acknowledged.delivered.count)
            if let failure = acknowledged.failure { throw failure }

            var rows: [Outbox.Row] = []
            if rounds < maxRoundsInFlight && !stopping {
                rows = try await watchdog.guarding("outbox read", logger: logger) {
                    try await Outbox.oldest(batchSize, excluding: inFlight, on: connection, logger: logger)
                }
            }
            if !rows.isEmpty {
                let ids = rows.map(\.id)
                inFlight.formUnion(ids)
                rounds += 1
                try await producer.enqueue(rows.map(\.outgoing)) { [wakeUp] report in
                    acknowledgements.record(ids, report)
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
    /// delivery report, delete them. A crash between produce and delete publishes them again
    /// (same event ids; consumers dedupe). Returns rows published.
    func publishRound(on connection: PostgresConnection) async throws -> Int {
        let rows = try await watchdog.guarding("outbox read", logger: logger) {
            try await Outbox.oldest(batchSize, on: connection, logger: logger)
        }
        guard !rows.isEmpty else { return 0 }
        let report = try await producer.send(rows.map(\.outgoing))
        guard report.isComplete else {
            throw report.failures[0]
        }
        try await watchdog.guarding("outbox delete", logger: logger) {
            try await Outbox.delete(rows.map(\.id), on: connection, logger: logger)
        }
        published.add(rows.count, ordering: .relaxed)
        return rows.count
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
