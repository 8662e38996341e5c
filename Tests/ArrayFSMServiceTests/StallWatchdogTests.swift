import ArrayFSM
import ArrayFSMService
import ArrayFSMTesting
import ArrayFSMTools
import PostgresNIO
import Synchronization
import Testing

/// A step stuck on the database (here: a table locked by another session, as a connection that
/// never answers would be) calls the watchdog, both in the consumer's batch and in the relay;
/// the work it held is not lost and completes once the database answers.
@Suite(.serialized) struct StallWatchdogTests {
    let logger = TestPostgres.logger

    final class Stalls: Sendable {
        let count = Atomic<Int>(0)
        var watchdog: StallWatchdog {
            StallWatchdog(timeout: .milliseconds(500)) { [self] _ in count.add(1, ordering: .relaxed) }
        }

        func wait(atLeast wanted: Int, timeout: Duration = .seconds(30)) async throws {
            let deadline = ContinuousClock.now + timeout
            while count.load(ordering: .relaxed) < wanted && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// Runs `body` while another session holds `table` in ACCESS EXCLUSIVE mode.
    func whileLocked(_ table: String, _ db: ArrayDatabase, _ body: () async throws -> Void) async throws {
        try await db.client.withConnection { connection in
            try await connection.query("BEGIN", logger: logger)
            try await connection.query(PostgresQuery(unsafeSQL: "LOCK TABLE \(table) IN ACCESS EXCLUSIVE MODE"), logger: logger)
            do {
                try await body()
            } catch {
                try await connection.query("ROLLBACK", logger: logger)
                throw error
            }
            try await connection.query("ROLLBACK", logger: logger)
        }
    }

    @Test func aBatchStuckOnTheDatabaseCallsTheWatchdogAndIsAppliedOnceItAnswers() async throws {
        try await TestPostgres.withDatabase { db in
            let harness = try ServiceHarness(database: db)
            let array = try await ArrayFixture.make(db, tasks: 10)
            let stalls = Stalls()
            try await whileLocked("arrayfsm_processed_command", db) {
                try harness.startServer(watchdog: stalls.watchdog)
                try await harness.produce([(CommandMessage.key(arrayID: array.arrayID), CommandMessage.json(
                    "get_array_max_concurrently_running", id: "stuck", payload: ["array_id": array.arrayID]))])
                try await stalls.wait(atLeast: 1)
                #expect(stalls.count.load(ordering: .relaxed) >= 1, "the watchdog saw the batch stuck")
            }
            let records = try await harness.read(harness.topics.results) { records in
                records.contains { $0.json["command_id"] as? String == "stuck" }
            }
            #expect(records.filter { $0.json["command_id"] as? String == "stuck" }.map { $0.json["status"] as? String } == ["ok"])
            try await harness.shutdown()
        }
    }

    @Test func aRelayStuckOnTheOutboxCallsTheWatchdogAndPublishesOnceItAnswers() async throws {
        try await TestPostgres.withDatabase { db in
            let harness = try ServiceHarness(database: db)
            let array = try await ArrayFixture.make(db, tasks: 10)
            // The command is applied (its result waits in the outbox) before the relay is started.
            let processor = CommandBatchProcessor(database: db, topics: harness.topics)
            _ = try await processor.process([IncomingCommand(
                topic: harness.topics.commands, partition: 0, offset: 0, key: CommandMessage.key(arrayID: array.arrayID),
                value: CommandMessage.json("get_array_max_concurrently_running", id: "waiting", payload: ["array_id": array.arrayID]))],
                logger: logger)
            let stalls = Stalls()
            let relay = OutboxRelay(database: db, producer: harness.producer, watchdog: stalls.watchdog, logger: logger)
            var drain: Task<Int, any Error>?
            try await whileLocked("arrayfsm_outbox", db) {
                drain = Task { try await relay.drain() }
                try await stalls.wait(atLeast: 1)
                #expect(stalls.count.load(ordering: .relaxed) == 1, "the watchdog saw the outbox read stuck")
            }
            #expect(try await drain?.value == 1, "the same drain publishes once the outbox answers")
            let records = try await harness.read(harness.topics.results) { records in
                records.contains { $0.json["command_id"] as? String == "waiting" }
            }
            #expect(records.count == 1)
            try await harness.shutdown()
        }
    }
}
