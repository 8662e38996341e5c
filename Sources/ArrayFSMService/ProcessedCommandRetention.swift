// ArrayFSMService — the processor: command batches from Kafka, one transaction each, the outbox
// and its relay, readiness and metrics. Uses ArrayFSM for the domain and Kafka for the wire.
import ArrayFSM
import Logging
import Metrics
import PostgresNIO
import ServiceLifecycle

/// Keeps the processed-commands table to a bounded age: every ``interval`` it deletes the rows
/// processed more than ``retention`` ago, oldest first, ``batchSize`` per transaction.
///
/// The trade-off (docs/operations.md, "Processed commands"): a repeat of a command older than the
/// retention is applied again, so the retention must stay above the commands topic's.
///
/// - One replica at a time: each delete transaction first takes a transaction-level advisory
///   lock without waiting; a replica that does not get it leaves the sweep to the one that has.
/// - Never in a command transaction's way: rows are taken `FOR UPDATE SKIP LOCKED` (a row a batch
///   holds is left for the next sweep), and each transaction is short, so a claim of an old id
///   waits for one small delete at most.
public struct ProcessedCommandRetention: Service {
    public var database: ArrayDatabase
    public var retention: Duration
    public var interval: Duration
    public var batchSize: Int
    let logger: Logger
    let deleted = Counter(label: "arrayfsm_processed_commands_deleted_total")
    let rows = Gauge(label: "arrayfsm_processed_commands_rows")

    /// Any 64-bit constant unique to the sweep's lock.
    static let lockKey: Int64 = 0x6172_7261_7972_746E  // "arrayrtn"

    public init(database: ArrayDatabase, retention: Duration, interval: Duration = .seconds(30), batchSize: Int = 5000, logger: Logger) {
        self.database = database
        self.retention = retention
        self.interval = interval
        self.batchSize = max(1, batchSize)
        self.logger = logger
    }

    /// Sweeps every ``interval`` until the group shuts down.
    public func run() async throws {
        var failing = false
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                let count = try await sweep()
                if count > 0 { logger.info("deleted processed commands past their retention", metadata: ["rows": "\(count)"]) }
                if failing { logger.info("processed-command retention works again") }
                failing = false
                if let estimate = try await rowEstimate() { rows.record(estimate) }
            } catch {
                if !failing { logger.warning("processed-command retention failed; trying again each interval", metadata: ["error": "\(error)"]) }
                failing = true
            }
            try? await cancelWhenGracefulShutdown { [interval] in try await Task.sleep(for: interval) }
        }
    }

    /// Deletes what is past the retention, in batches, while this replica holds the sweep's
    /// lock; returns the rows deleted.
    @discardableResult
    public func sweep() async throws -> Int {
        var total = 0
        while !Task.isCancelled {
            let count = try await database.transaction(logger: logger) { connection in
                try await deleteBatch(on: connection)
            }
            guard let count else { break }  // another replica sweeps
            total += count
            deleted.increment(by: count)
            if count < batchSize { break }
        }
        return total
    }

    /// One batch in the caller's transaction; nil when another replica holds the lock.
    func deleteBatch(on connection: PostgresConnection) async throws -> Int? {
        var locked = false
        for try await got in try await connection.query("SELECT pg_try_advisory_xact_lock(\(Self.lockKey))", logger: logger).decode(Bool.self) {
            locked = got
        }
        guard locked else { return nil }
        let seconds = Double(retention.components.seconds) + Double(retention.components.attoseconds) / 1e18
        let rows = try await connection.query(
            """
            WITH expired AS (
                DELETE FROM arrayfsm_processed_command
                WHERE command_id IN (
                    SELECT command_id FROM arrayfsm_processed_command
                    WHERE processed_at < now() - make_interval(secs => \(seconds))
                    ORDER BY processed_at
                    LIMIT \(batchSize)
                    FOR UPDATE SKIP LOCKED)
                RETURNING 1
            )
            SELECT count(*) FROM expired
            """, logger: logger)
        for try await count in rows.decode(Int64.self) { return Int(count) }
        return 0
    }

    /// The table's live rows as PostgreSQL's statistics count them (a count(*) of a week of
    /// commands would read the whole table each minute).
    func rowEstimate() async throws -> Int? {
        let rows = try await database.client.query(
            "SELECT n_live_tup FROM pg_stat_user_tables WHERE relid = 'arrayfsm_processed_command'::regclass", logger: logger)
        for try await count in rows.decode(Int64.self) { return Int(count) }
        return nil
    }
}
