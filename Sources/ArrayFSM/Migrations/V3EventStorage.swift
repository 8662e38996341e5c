// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
extension Migration {
    /// How the service's event bytes are stored.
    ///
    /// Outbox values live for milliseconds (written, published, deleted), so compressing them is
    /// pure cost: `EXTERNAL` keeps large values out of line but uncompressed. Stored results are
    /// kept for repeats and read rarely: lz4 compresses them several times cheaper than the
    /// default pglz. (bench-serve showed no measurable difference either way on this machine; the
    /// change stands on the reasoning above, not on a figure.)
    static let v3EventStorage = Migration(
        version: 3,
        name: "event storage: uncompressed outbox values, lz4 stored results",
        statements: [
            "ALTER TABLE arrayfsm_outbox ALTER COLUMN value SET STORAGE EXTERNAL",
            "ALTER TABLE arrayfsm_processed_command ALTER COLUMN result_events SET COMPRESSION lz4",
        ]
    )
}
