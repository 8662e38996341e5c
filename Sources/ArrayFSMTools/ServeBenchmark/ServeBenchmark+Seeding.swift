// ArrayFSMTools, bench-serve: set-up: the arrays each phase works on, written directly, not measured.
import ArrayFSM
import Foundation
import Logging
import PostgresNIO

extension ServeBenchmark {
    func seed(_ db: ArrayDatabase, count: Int, tasks: Int, logger: Logger) async throws -> [ArrayFixture] {
        var arrays: [ArrayFixture] = []
        for _ in 0..<count { arrays.append(try await ArrayFixture.make(db, tasks: tasks, logger: logger)) }
        return arrays
    }

    /// Arrays whose tasks and instances are already in I, in `batchesPerArray` batches of `batchSize`
    /// (written directly, set-based: this is set-up, not what is measured).
    func seedInstantiated(_ db: ArrayDatabase, arrays: Int, batchesPerArray: Int, batchSize: Int, logger: Logger) async throws -> [Int64] {
        var ids: [Int64] = []
        for _ in 0..<arrays {
            let fixture = try await ArrayFixture.make(db, tasks: batchesPerArray * batchSize, status: .instantiating, logger: logger)
            try await db.client.query(
                """
                INSERT INTO task_instance (workflow_run_id, array_id, task_id, task_resources_id, array_batch_num, array_step_id, status)
                SELECT 1, \(fixture.arrayID), id, 1, (rank / \(Int32(batchSize)) + 1)::int, (rank % \(Int32(batchSize)))::int, 'I'
                FROM (SELECT id, (row_number() OVER (ORDER BY id) - 1)::int AS rank FROM task WHERE array_id = \(fixture.arrayID)) AS t
                """, logger: logger)
            try await db.client.query(
                "UPDATE \"array\" SET last_batch_num = \(Int32(batchesPerArray)) WHERE id = \(fixture.arrayID)", logger: logger)
            ids.append(fixture.arrayID)
        }
        try await settle(db, logger: logger)
        return ids
    }

    /// Leaves the database as a steady service would find it before a timed phase: the set-up's
    /// rows vacuumed and analyzed, the outbox's dead rows from the phase before gone, and their
    /// pages written out (as pgbench vacuums before its runs). Without it the paced phase
    /// started with autovacuum of the tables just written and a checkpoint writing the set-up's
    /// pages: stalls of a few hundred milliseconds in its p99 that came from the benchmark's own
    /// set-up (docs: README, "bench-serve").
    func settle(_ db: ArrayDatabase, logger: Logger) async throws {
        try await db.client.query("VACUUM (ANALYZE) task, task_instance, arrayfsm_outbox, arrayfsm_processed_command", logger: logger)
        do {
            try await db.client.query("CHECKPOINT", logger: logger)
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "42501" {
            // CHECKPOINT needs superuser or pg_checkpoint; on a server where the benchmark has
            // neither, the phase simply runs with whatever the checkpointer is doing. Any other
            // error (the server gone, say) ends the benchmark as before.
            logger.notice("CHECKPOINT refused; timing without it", metadata: ["error": "\(String(reflecting: error))"])
        }
    }
}
