// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
extension Migration {
    /// Each processed command's digest (``CommandDigest``): a repeat of its `command_id` is the
    /// same command only when the digest matches. Rows processed before have none, and any
    /// repeat of them is answered as a repeat.
    static let v4CommandDigest = Migration(
        version: 4,
        name: "processed commands: digest of type, key and payload",
        statements: [
            "ALTER TABLE arrayfsm_processed_command ADD COLUMN digest bytea",
        ]
    )
}
