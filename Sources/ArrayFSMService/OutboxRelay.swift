import ArrayFSM
import Kafka
import Logging
import PostgresNIO
import Synchronization

/// Publishes the outbox: reads the oldest rows, produces them with the idempotent producer,
/// and deletes them only after every one has a delivery report.
///
/// Each round is one transaction holding a transaction-level advisory lock, so with several
/// `serve` instances exactly one publishes at a time, in outbox order (which keeps per-key order:
/// one array's commands are applied by one consumer, one after the other). A round that fails
/// deletes nothing: its rows are published again (same `event_id`s; consumers dedupe).
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
                    while try await publishRound() == batchSize {}  // more may be waiting
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
        var total = 0
        while true {
            guard let count = try await publishRound(), count > 0 else { return total }
            total += count
        }
    }

    /// One round: lock, read, produce, await delivery, delete, commit. Returns rows published,
    /// or nil when another relay holds the lock.
    func publishRound() async throws -> Int? {
        try await database.transaction(logger: logger) { connection in
            var locked = false
            for try await got in try await connection.query("SELECT pg_try_advisory_xact_lock(\(Self.lockKey))", logger: logger)
                .decode(Bool.self)
            {
                locked = got
            }
            guard locked else { return nil }
            // Losing this DELETE in a crash only publishes the rows again (same event ids), so the
            // relay's commit need not wait for the WAL flush; the commands' commits always do.
            try await connection.query("SET LOCAL synchronous_commit = off", logger: logger)
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
}
