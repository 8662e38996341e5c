// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
extension Migration {
    /// Outbox rows that cannot be delivered are parked instead of retried forever.
    ///
    /// The relay counts each failed delivery of a row (`attempts`, first and last failure, the
    /// broker's or client's error text); a row that keeps failing while other rows are delivered
    /// gets `parked_at` and is no longer read by the relay, until an operator requeues or drops it
    /// (`arrayfsm outbox`). Nullable columns and a constant default: adding them rewrites nothing,
    /// and a waiting row carries no extra bytes beyond the null bitmap. No index: the relay's read
    /// walks the primary key and skips the (few) parked rows; `outbox list` scans the table.
    static let v5OutboxParking = Migration(
        version: 5,
        name: "outbox parking: failed delivery attempts, parked rows",
        statements: [
            """
            ALTER TABLE arrayfsm_outbox
                ADD COLUMN attempts integer NOT NULL DEFAULT 0,
                ADD COLUMN first_failed_at timestamptz,
                ADD COLUMN last_failed_at timestamptz,
                ADD COLUMN last_error text,
                ADD COLUMN parked_at timestamptz
            """,
        ]
    )
}
