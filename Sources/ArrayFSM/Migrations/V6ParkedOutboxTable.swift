// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
extension Migration {
    /// Parked outbox rows move to a table of their own; the outbox holds only rows waiting to be
    /// published.
    ///
    /// With the parked rows beside the waiting ones, the relay's read needed `parked_at IS NULL`.
    /// The outbox is a queue, often empty when ANALYZE samples it, and then has no statistics:
    /// PostgreSQL takes `IS NULL` to match 0.5% of the rows and, with 30,000 rows waiting, scanned
    /// and sorted all of them (11 ms, in psql) instead of walking the primary key to the first
    /// 2,000 (2 ms) — exactly when the relay is behind; bench-serve's small commands ran 14–19%
    /// slower. A parked row keeps its id, so a requeued row goes back in its place.
    ///
    /// Roles that may delete outbox rows (serve's) get the same rights on the new table: an
    /// upgrade must not leave serve unable to park.
    static let v6ParkedOutboxTable = Migration(
        version: 6,
        name: "outbox: parked rows in a table of their own",
        statements: [
            """
            CREATE TABLE arrayfsm_outbox_parked (
                id bigint PRIMARY KEY,
                topic text NOT NULL,
                key bytea,
                value bytea NOT NULL,
                headers text[] NOT NULL,
                created_at timestamptz NOT NULL,
                attempts integer NOT NULL,
                first_failed_at timestamptz,
                last_failed_at timestamptz,
                last_error text NOT NULL,
                parked_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            """
            INSERT INTO arrayfsm_outbox_parked
                (id, topic, key, value, headers, created_at, attempts, first_failed_at, last_failed_at, last_error, parked_at)
            SELECT id, topic, key, value, headers, created_at, attempts, first_failed_at, last_failed_at, coalesce(last_error, ''), parked_at
            FROM arrayfsm_outbox WHERE parked_at IS NOT NULL
            """,
            "DELETE FROM arrayfsm_outbox WHERE parked_at IS NOT NULL",
            "ALTER TABLE arrayfsm_outbox DROP COLUMN parked_at",
            """
            DO $$
            DECLARE grantee text;
            BEGIN
                FOR grantee IN
                    SELECT DISTINCT a.grantee::regrole::text
                    FROM pg_class AS c, aclexplode(c.relacl) AS a
                    WHERE c.oid = 'arrayfsm_outbox'::regclass AND a.privilege_type = 'DELETE'
                      AND a.grantee <> 0 AND a.grantee <> c.relowner
                LOOP
                    EXECUTE format('GRANT SELECT, INSERT, DELETE ON arrayfsm_outbox_parked TO %s', grantee);
                END LOOP;
            END
            $$
            """,
        ]
    )
}
