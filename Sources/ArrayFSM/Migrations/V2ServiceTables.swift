// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
extension Migration {
    /// The service's own tables: processed commands (idempotency) and the transactional outbox.
    ///
    /// Both are written in the same transaction as the operations, so a command's effects, its
    /// stored result and its pending events commit or vanish together.
    static let v2ServiceTables = Migration(
        version: 2,
        name: "service tables: processed commands, outbox",
        statements: [
            """
            CREATE TABLE arrayfsm_processed_command (
                command_id text PRIMARY KEY,
                type text NOT NULL,
                status text NOT NULL,
                -- The result event's parts, exactly as first published: a repeat re-emits them.
                result_events bytea[] NOT NULL,
                -- Where the result also went (the command's reply_to), so a repeat goes there too.
                reply_to text,
                result_key bytea,
                processed_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            "CREATE INDEX arrayfsm_processed_command_processed_at_idx ON arrayfsm_processed_command (processed_at)",
            """
            CREATE TABLE arrayfsm_outbox (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                topic text NOT NULL,
                key bytea,
                value bytea NOT NULL,
                -- Flat [name, value, name, value, …], as kcat -J prints headers.
                headers text[] NOT NULL DEFAULT '{}',
                created_at timestamptz NOT NULL DEFAULT clock_timestamp()
            )
            """,
        ]
    )
}
