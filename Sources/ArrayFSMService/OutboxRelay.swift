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
/// array's commands are applied by one consumer, one after the other). A round that fails deletes
/// nothing: its rows are published again (same `event_id`s; consumers dedupe).
public final class OutboxRelay: Sendable {
    let database: ArrayDatabase
    let producer: KafkaProducer
    let batchSize: Int
    let idleInterval: Duration
    let logger: Logger
    private let wakeUp: AsyncStream<Void>.Continuation
    private let wakeUps: Mutex<AsyncStream<Void>?>

    /// Any 64-bit constant unique to the relay's lock.
    static let lockKey: Int64 = 0x6172_7261_7972_6C79  // "arrayrly"

    /// Messages published since start (for metrics).
    public let published = Atomic<Int>(0)

    public init(database: ArrayDatabase, producer: KafkaProducer, batchSize: Int = 2000,
                idleInterval: Duration = .milliseconds(100), logger: Logger) {
        self.database = database
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
    public func run() async {
        guard let stream = wakeUps.withLock({ stream in defer { stream = nil }; return stream }) else {
            preconditionFailure("OutboxRelay.run() called twice")
        }
        var backoff = Duration.milliseconds(100)
        await withTaskGroup(of: Void.self) { group in
            // A ticker so rows written by other instances are published without a wake-up.
            group.addTask { [idleInterval, wakeUp] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: idleInterval)
                    wakeUp.yield()
                }
            }
            for await _ in stream {
                if Task.isCancelled { break }
                do {
                    try await publishAvailable()
                    backoff = .milliseconds(100)
                } catch {
                    logger.warning("outbox relay round failed; retrying", metadata: ["error": "\(error)", "in": "\(backoff)"])
                    try? await Task.sleep(for: backoff)
                    backoff = min(backoff * 2, .seconds(5))
                }
            }
            group.cancelAll()
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

    /// Publishes until a round finds fewer rows than a full batch; nil when another relay leads.
    @discardableResult
    func publishAvailable() async throws -> Int? {
        try await asLeader { connection in
            var total = 0
            while true {
                let count = try await publishRound(on: connection)
                total += count
                if count < batchSize { return total }
            }
        }
    }

    /// Runs `body` holding the relay's session-level advisory lock on a connection of its own, so
    /// one relay publishes at a time without keeping a transaction open while Kafka acknowledges
    /// (an open transaction would hold back vacuum and HOT pruning on the hot tables). Returns nil
    /// when another relay holds the lock.
    func asLeader<Result: Sendable>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result? {
        try await database.client.withConnection { connection in
            var locked = false
            for try await got in try await connection.query("SELECT pg_try_advisory_lock(\(Self.lockKey))", logger: logger)
                .decode(Bool.self)
            {
                locked = got
            }
            guard locked else { return nil }
            do {
                let result = try await body(connection)
                try await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
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
        let rows = try await Outbox.oldest(batchSize, on: connection, logger: logger)
        guard !rows.isEmpty else { return 0 }
        let messages = rows.map { row in
            KafkaOutgoingMessage(
                topic: row.message.topic, key: row.message.key, value: row.message.value,
                headers: stride(from: 0, to: row.message.headers.count - 1, by: 2).map {
                    KafkaHeader(name: row.message.headers[$0], string: row.message.headers[$0 + 1])
                })
        }
        let report = try await producer.send(messages)
        guard report.isComplete else {
            throw report.failures[0]
        }
        try await Outbox.delete(rows.map(\.id), on: connection, logger: logger)
        published.add(rows.count, ordering: .relaxed)
        return rows.count
    }
}
