// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
import Logging
import PostgresNIO

/// Applies pending migrations, idempotently, safe to run from several processes at once.
///
/// All of it is one transaction holding a transaction-level advisory lock: a second
/// `arrayfsm migrate` waits for the first, then finds nothing left to do.
public struct Migrator: Sendable {
    public var migrations: [Migration]

    /// The advisory lock key (`'arrayfsm.migrate'` hashed): any 64-bit constant unique to this purpose.
    static let lockKey: Int64 = 0x6172_7261_7966_736D  // "arrayfsm"

    public init(migrations: [Migration] = Migration.all) {
        precondition(
            zip(migrations, migrations.dropFirst()).allSatisfy { $0.version < $1.version },
            "migrations must be in ascending version order")
        self.migrations = migrations
    }

    /// Applies what is pending and returns the versions applied now (empty when up to date).
    @discardableResult
    public func migrate(_ client: PostgresClient, logger: Logger) async throws -> [Int32] {
        try await client.withConnection { connection in
            try await ArrayDatabase.transaction(on: connection, logger: logger) { connection in
                try await connection.query("SELECT pg_advisory_xact_lock(\(Self.lockKey))", logger: logger)
                try await connection.query(
                    """
                    CREATE TABLE IF NOT EXISTS arrayfsm_migration (
                        version integer PRIMARY KEY,
                        name text NOT NULL,
                        applied_at timestamptz NOT NULL DEFAULT now()
                    )
                    """, logger: logger)
                var applied = Set<Int32>()
                for try await version in try await connection.query("SELECT version FROM arrayfsm_migration", logger: logger)
                    .decode(Int32.self)
                {
                    applied.insert(version)
                }
                var now: [Int32] = []
                for migration in migrations where !applied.contains(migration.version) {
                    logger.info("applying migration", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
                    for statement in migration.statements {
                        try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                    }
                    try await connection.query(
                        "INSERT INTO arrayfsm_migration (version, name) VALUES (\(migration.version), \(migration.name))",
                        logger: logger)
                    now.append(migration.version)
                }
                return now
            }
        }
    }
}
