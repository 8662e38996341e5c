// ArrayFSMChaos — the fault suite: serve processes under kills, restarts, broker and database
// faults and hostile input, checked by an oracle against a clean run. Built on ArrayFSMTools.
import Logging
import PostgresNIO

/// The least-privilege role `serve` runs as (docs/operations.md, "Database roles"): it reads and
/// writes rows, creates nothing, and cannot change the schema.
public enum ServiceRole {
    public static let name = "arrayfsm_serve"

    /// Creates the role if missing and grants it exactly what docs/operations.md grants, on the
    /// database `client` is connected to (after `migrate`). `lockTimeout` is set on the role, as
    /// an operator bounds lock waits (e.g. "300ms"); nil resets it.
    public static func create(on client: PostgresClient, lockTimeout: String? = nil, logger: Logger) async throws {
        try await client.query(
            """
            DO $$ BEGIN
                IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'arrayfsm_serve') THEN
                    CREATE ROLE arrayfsm_serve LOGIN CONNECTION LIMIT 100;
                END IF;
            END $$
            """, logger: logger)
        for statement: PostgresQuery in [
            "REVOKE ALL ON SCHEMA public FROM PUBLIC",
            "GRANT USAGE ON SCHEMA public TO arrayfsm_serve",
            #"GRANT SELECT, INSERT, UPDATE ON "array", task, task_instance TO arrayfsm_serve"#,
            "GRANT SELECT, INSERT, UPDATE, DELETE ON arrayfsm_processed_command, arrayfsm_outbox TO arrayfsm_serve",
            "GRANT SELECT, INSERT, DELETE ON arrayfsm_outbox_parked TO arrayfsm_serve",
            "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO arrayfsm_serve",
            "GRANT SELECT ON task_status, task_instance_status, arrayfsm_migration TO arrayfsm_serve",
        ] {
            try await client.query(statement, logger: logger)
        }
        if let lockTimeout {
            // A setting, not data: SET-style statements take no bind parameters, so the value is
            // checked to be a plain duration before it is spliced in.
            precondition(lockTimeout.allSatisfy { $0.isNumber || $0.isLetter }, "lock timeout must look like 300ms")
            try await client.query(PostgresQuery(unsafeSQL: "ALTER ROLE arrayfsm_serve SET lock_timeout = '\(lockTimeout)'"), logger: logger)
        } else {
            try await client.query("ALTER ROLE arrayfsm_serve RESET lock_timeout", logger: logger)
        }
    }
}
