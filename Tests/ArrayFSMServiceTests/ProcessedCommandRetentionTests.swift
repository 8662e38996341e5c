import ArrayFSM
import ArrayFSMService
import ArrayFSMTesting
import ArrayFSMTools
import Foundation
import PostgresNIO
import Testing

/// Processed commands are kept for the retention and then deleted by serve itself: in bounded
/// batches, by one replica at a time, never waiting for a command transaction.
@Suite struct ProcessedCommandRetentionTests {
    let logger = TestPostgres.logger

    func insert(_ prefix: String, count: Int, age: String, _ db: ArrayDatabase) async throws {
        try await db.client.query(
            """
            INSERT INTO arrayfsm_processed_command (command_id, type, status, result_events, processed_at)
            SELECT \(prefix) || n, 'add_array', 'ok', '{}', now() - \(age)::interval FROM generate_series(1, \(count)) AS n
            """, logger: logger)
    }

    func ids(_ db: ArrayDatabase) async throws -> [String] {
        var ids: [String] = []
        let rows = try await db.client.query("SELECT command_id FROM arrayfsm_processed_command ORDER BY command_id", logger: logger)
        for try await id in rows.decode(String.self) { ids.append(id) }
        return ids
    }

    @Test func rowsPastTheRetentionAreDeletedInBatchesAndTheRestKept() async throws {
        try await TestPostgres.withDatabase { db in
            try await insert("old-", count: 25, age: "2 days", db)
            try await insert("new-", count: 5, age: "1 hour", db)
            let retention = ProcessedCommandRetention(database: db, retention: .seconds(86_400), batchSize: 10, logger: logger)
            #expect(try await retention.sweep() == 25)
            #expect(try await ids(db) == (1...5).map { "new-\($0)" }.sorted())
            #expect(try await retention.sweep() == 0)
        }
    }

    @Test func aRowACommandTransactionHoldsIsLeftForTheNextSweepWithoutWaiting() async throws {
        try await TestPostgres.withDatabase { db in
            try await insert("old-", count: 3, age: "2 days", db)
            let retention = ProcessedCommandRetention(database: db, retention: .seconds(86_400), logger: logger)
            try await db.client.withConnection { holder in
                try await holder.query("BEGIN", logger: logger)
                try await holder.query("SELECT 1 FROM arrayfsm_processed_command WHERE command_id = 'old-2' FOR UPDATE", logger: logger)
                let started = ContinuousClock.now
                #expect(try await retention.sweep() == 2)
                #expect(ContinuousClock.now - started < .seconds(5), "the sweep did not wait for the lock")
                try await holder.query("ROLLBACK", logger: logger)
            }
            #expect(try await ids(db) == ["old-2"])
            #expect(try await retention.sweep() == 1)
        }
    }

    @Test func whileAnotherReplicaSweepsThisOneDeletesNothing() async throws {
        try await TestPostgres.withDatabase { db in
            try await insert("old-", count: 3, age: "2 days", db)
            let retention = ProcessedCommandRetention(database: db, retention: .seconds(86_400), logger: logger)
            try await db.client.withConnection { other in
                try await other.query("BEGIN", logger: logger)
                try await other.query("SELECT pg_advisory_xact_lock(\(Int64(0x6172_7261_7972_746E)))", logger: logger)
                #expect(try await retention.sweep() == 0)
                try await other.query("COMMIT", logger: logger)
            }
            #expect(try await retention.sweep() == 3)
        }
    }

    @Test func aRepeatOlderThanTheRetentionIsAppliedAgain() async throws {
        try await TestPostgres.withDatabase { db in
            let processor = CommandBatchProcessor(database: db)
            let fixture = try await ArrayFixture.make(db, tasks: 1)
            let command = IncomingCommand(
                topic: "arrayfsm.commands", partition: 0, offset: 0, key: CommandMessage.key(arrayID: fixture.arrayID),
                value: CommandMessage.json("get_array_max_concurrently_running", id: "aged", payload: ["array_id": fixture.arrayID]))
            #expect(try await processor.process([command], logger: logger).commands.map(\.status.rawValue) == ["ok"])
            #expect(try await processor.process([command], logger: logger).commands.map(\.status.rawValue) == ["duplicate"])
            try await db.client.query(
                "UPDATE arrayfsm_processed_command SET processed_at = now() - interval '8 days' WHERE command_id = 'aged'", logger: logger)
            let retention = ProcessedCommandRetention(database: db, retention: .seconds(604_800), logger: logger)
            #expect(try await retention.sweep() == 1)
            #expect(try await processor.process([command], logger: logger).commands.map(\.status.rawValue) == ["ok"], "the documented trade-off")
        }
    }
}
