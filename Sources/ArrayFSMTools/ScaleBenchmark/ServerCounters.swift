// ArrayFSMTools, bench-scale: the server's WAL and buffer counters around a timed step.
import Logging
import PostgresNIO

/// The cluster's WAL counters (`pg_stat_wal`) and this database's buffer counters
/// (`pg_stat_database`) at one moment; the difference of two is what happened in between.
///
/// Both views are cluster- or database-wide: work of other sessions (autovacuum, another
/// client) in the same interval is counted too.
struct ServerCounters: Sendable {
    var walBytes: Double
    var walFullPageImages: Int64
    var blocksHit: Int64
    var blocksRead: Int64

    /// Flushes this session's pending statistics and reads the counters.
    ///
    /// A session reports its counters only every second or so; `pg_stat_force_next_flush()`
    /// makes it report them when the statement ends (before the server says it is ready for
    /// the next one), so the read that follows includes everything this session did before.
    static func read(on connection: PostgresConnection, logger: Logger) async throws -> ServerCounters {
        try await connection.query("SELECT pg_stat_force_next_flush()", logger: logger)
        let rows = try await connection.query(
            """
            SELECT w.wal_bytes::float8, w.wal_fpi, d.blks_hit, d.blks_read
            FROM pg_stat_wal AS w, pg_stat_database AS d
            WHERE d.datname = current_database()
            """, logger: logger)
        var counters = ServerCounters(walBytes: 0, walFullPageImages: 0, blocksHit: 0, blocksRead: 0)
        for try await (bytes, fpi, hit, read) in rows.decode((Double, Int64, Int64, Int64).self) {
            counters = ServerCounters(walBytes: bytes, walFullPageImages: fpi, blocksHit: hit, blocksRead: read)
        }
        return counters
    }

    static func - (after: ServerCounters, before: ServerCounters) -> ServerCounters {
        ServerCounters(
            walBytes: after.walBytes - before.walBytes,
            walFullPageImages: after.walFullPageImages - before.walFullPageImages,
            blocksHit: after.blocksHit - before.blocksHit,
            blocksRead: after.blocksRead - before.blocksRead)
    }
}
