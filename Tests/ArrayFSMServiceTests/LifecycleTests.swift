import ArrayFSM
import ArrayFSMService
import ArrayFSMTesting
import ArrayFSMTools
import Foundation
import Kafka
import PostgresNIO
import Testing

/// serve against its own dependencies going away: readiness, one log line per outage, a bounded
/// shutdown drain, the starvation watchdog's count of waiting commands, topic creation.
@Suite(.serialized) struct LifecycleTests {
    let logger = TestPostgres.logger

    func count(_ db: ArrayDatabase, _ sql: String) async throws -> Int {
        for try await n in try await db.client.query(.init(unsafeSQL: sql)).decode(Int64.self) { return Int(n) }
        return 0
    }

    /// Polls `/ready` until it answers `status` or `timeout` passes; returns the last answer.
    func waitForReady(port: Int, status: Int, timeout: Duration = .seconds(30)) async throws -> Int {
        let deadline = ContinuousClock.now + timeout
        var last = 0
        repeat {
            last = try await HTTPGet.status(port: port, path: "/ready")
            if last == status { return last }
            try await Task.sleep(for: .milliseconds(200))
        } while ContinuousClock.now < deadline
        return last
    }

    /// A command that locks its array row and is answered `rejected` (batch 9 was never issued).
    func launch(_ array: ArrayFixture, _ id: String) -> (key: [UInt8]?, value: [UInt8]?) {
        (CommandMessage.key(arrayID: array.arrayID), CommandMessage.json("transition_array_to_launched", id: id, payload: [
            "array_id": array.arrayID, "batch_number": 9, "next_report_increment": 60]))
    }

    /// Produces `messages` while the array row is locked, then makes the broker refuse every
    /// produce request (NOT_ENOUGH_REPLICAS, retriable: the producer keeps retrying) before the
    /// lock goes: the commands are applied, and their results stay in the outbox.
    func produceWhileProducingFails(_ messages: [(key: [UInt8]?, value: [UInt8]?)], array: ArrayFixture,
                                    harness: ServiceHarness, db: ArrayDatabase) async throws {
        try await db.client.withConnection { connection in
            try await connection.query("BEGIN", logger: logger)
            try await connection.query(#"SELECT id FROM "array" WHERE id = \#(array.arrayID) FOR UPDATE"#, logger: logger)
            try await harness.produce(messages)
            try harness.cluster?.pushRequestErrors(apiKey: 0, Array(repeating: 19, count: 20_000))
            try await Task.sleep(for: .milliseconds(300))
            try await connection.query("ROLLBACK", logger: logger)
        }
    }

    // MARK: readiness and outages

    @Test func readyIs503WhileTheDatabaseIsDownAndEachOutageIsLoggedOnceAsItStartsAndEnds() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: ServeProcessTests.binary), "build arrayfsm first (swift build --build-tests)")
        // A server of its own: this test stops it, and gives its role a lock timeout (as
        // docs/operations.md advises) so that a locked table fails each batch attempt.
        let postgres = try ThrowawayPostgres()
        defer { postgres.stop() }
        try await postgres.url.withClient(maxConnections: 1, logger: logger) { client in
            try await Migrator().migrate(client, logger: logger)
            try await client.query("ALTER ROLE postgres SET lock_timeout = '100ms'", logger: logger)
        }
        try await postgres.url.withClient(maxConnections: 4, parameters: DatabaseURL.batchParameters(), logger: logger) { client in
            let db = ArrayDatabase(client: client)
            let harness = try ServiceHarness(database: db)
            let array = try await ArrayFixture.make(db, tasks: 4)
            let port = try ThrowawayPostgres.freePort()
            let serve = try harness.startServerProcess(binary: ServeProcessTests.binary, databaseURL: postgres.url, extraEnvironment: [
                "ARRAYFSM_METRICS_PORT": String(port), "ARRAYFSM_LOG_LEVEL": "notice",
            ])
            defer { serve.signal(SIGKILL); _ = serve.wait() }
            #expect(try await waitForReady(port: port, status: 200) == 200, "\(serve.output)")

            try postgres.stopServer()
            #expect(try await waitForReady(port: port, status: 503, timeout: .seconds(20)) == 503, "not ready while the database is down")
            #expect(try await HTTPGet.text(port: port, path: "/ready").contains("database unreachable"))
            #expect(try await HTTPGet.status(port: port, path: "/health") == 200, "alive all the same")
            try await Task.sleep(for: .seconds(3))
            #expect(try await HTTPGet.status(port: port, path: "/ready") == 503)
            try postgres.startServer()
            #expect(try await waitForReady(port: port, status: 200) == 200, "ready again once the database is back")

            // A command arrives while its table is locked: every attempt of its batch fails (lock
            // timeout) and is retried with backoff until the lock goes.
            try await db.client.withConnection { connection in
                try await connection.query("BEGIN", logger: logger)
                try await connection.query("LOCK TABLE arrayfsm_processed_command IN ACCESS EXCLUSIVE MODE", logger: logger)
                try await harness.produce([launch(array, "during")])
                try await Task.sleep(for: .seconds(3))
                try await connection.query("ROLLBACK", logger: logger)
            }
            let results = try await harness.read(harness.topics.results) { $0.contains { $0.json["command_id"] as? String == "during" } }
            #expect(results.compactMap { $0.json["command_id"] as? String } == ["during"], "the command waited and was applied once")

            serve.signal(SIGTERM)
            #expect(await serve.wait(timeout: .seconds(60)) == 0, "\(serve.output)")
            let log = serve.output
            func lines(_ text: String) -> Int { log.components(separatedBy: "\n").filter { $0.contains(text) }.count }
            #expect(lines("database unreachable: ") == 1, "one line as the outage starts:\n\(log)")
            #expect(lines("database reachable again after ") == 1, "one as it ends:\n\(log)")
            #expect(lines("batch not applied") == 1, "the batch's retries are one line too:\n\(log)")
            #expect(lines("batches applied again after ") == 1, "\(log)")
            #expect(lines("outbox relay round failed") <= 1, "\(log)")
            #expect(lines("outbox relay round failed") == lines("outbox relay publishing again after "), "\(log)")
            try await harness.shutdown()
        }
    }

    @Test func notReadyWhileTheRelayMakesNoProgressWithEventsWaitingAndReadyOnceItPublishes() async throws {
        try await TestPostgres.withDatabase { db in
            let harness = try ServiceHarness(database: db)
            let server = try harness.startServer { $0.readyRelayStall = .seconds(2) }
            let array = try await ArrayFixture.make(db, tasks: 4)
            try await harness.produce([launch(array, "warm")])
            _ = try await harness.read(harness.topics.results) { !$0.isEmpty }
            #expect(server.readiness.obstacles == [], "ready while the relay keeps up")

            try await produceWhileProducingFails([launch(array, "stuck")], array: array, harness: harness, db: db)
            // Wait for this obstacle, not the first one: a database probe unanswered for 5 s on a
            // loaded machine makes serve not ready too.
            func relayStalled() -> Bool { server.readiness.obstacles.contains { if case .relayStalled = $0 { true } else { false } } }
            let deadline = ContinuousClock.now + .seconds(20)
            while !relayStalled() && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
            #expect(relayStalled(), "\(server.readiness.obstacles)")
            #expect(try await count(db, "SELECT count(*) FROM arrayfsm_outbox") == 1, "the event waits in the outbox")

            try harness.cluster?.clearRequestErrors(apiKey: 0)
            let records = try await harness.read(harness.topics.results) { $0.contains { $0.json["command_id"] as? String == "stuck" } }
            #expect(records.contains { $0.json["command_id"] as? String == "stuck" })
            let again = ContinuousClock.now + .seconds(20)
            while !server.isReady && ContinuousClock.now < again { try await Task.sleep(for: .milliseconds(100)) }
            #expect(server.readiness.obstacles == [], "ready again once the relay publishes")
            try await harness.shutdown()
        }
    }

    // MARK: shutdown

    @Test func sigtermWhileTheRelayCannotPublishExitsNonZeroWithinTheShutdownTimeoutAndLeavesTheRowsInTheOutbox() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: ServeProcessTests.binary), "build arrayfsm first (swift build --build-tests)")
        try await TestPostgres.withDatabase { db, url in
            let harness = try ServiceHarness(database: db)
            let array = try await ArrayFixture.make(db, tasks: 4)
            let serve = try harness.startServerProcess(binary: ServeProcessTests.binary, databaseURL: url, extraEnvironment: [
                "ARRAYFSM_SHUTDOWN_TIMEOUT_SECONDS": "3",
            ])
            defer { serve.signal(SIGKILL); _ = serve.wait() }
            try await harness.produce([launch(array, "warm")])
            _ = try await harness.read(harness.topics.results) { !$0.isEmpty }

            try await produceWhileProducingFails((0..<25).map { launch(array, "left-\($0)") }, array: array, harness: harness, db: db)
            let applied = ContinuousClock.now + .seconds(30)
            while try await count(db, "SELECT count(*) FROM arrayfsm_processed_command") < 26 && ContinuousClock.now < applied {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(try await count(db, "SELECT count(*) FROM arrayfsm_outbox") == 25)

            let signalled = ContinuousClock.now
            serve.signal(SIGTERM)
            let code = await serve.wait(timeout: .seconds(30))
            let took = ContinuousClock.now - signalled
            #expect(code != nil && code != 0, "exit status \(code.map(String.init) ?? "none"):\n\(serve.output)")
            #expect(took < .seconds(3 + 10), "the drain is cut at its timeout (took \(took))")
            #expect(serve.output.contains("shutdown timed out after 3.0 s with 25 events still in the outbox; the next instance publishes them"),
                    "\(serve.output)")
            #expect(try await count(db, "SELECT count(*) FROM arrayfsm_outbox") == 25, "nothing lost: the rows wait for the next relay")
            try await harness.shutdown()
        }
    }

    // MARK: the starvation watchdog's waiting commands

    @Test func aPartitionWithoutCommittedOffsetCountsOnlyWhatRetentionLeftAsWaiting() async throws {
        // The mock cluster keeps ~5 MiB per partition and deletes the oldest message sets past it:
        // retention by size, which moves the low watermark.
        let cluster = try MockKafkaCluster(brokers: 1, topics: ["retained": 2])
        let producer = try KafkaProducer(configuration: KafkaConfiguration(bootstrapServers: cluster.bootstrapServers))
        for index in 0..<8 {
            // One request each, so each is a message set of its own.
            try await producer.send(topic: "retained", partition: 0, value: Array(repeating: UInt8(index), count: 900_000))
        }
        let consumer = try KafkaConsumer(configuration: KafkaConfiguration(
            bootstrapServers: cluster.bootstrapServers, groupID: "fresh-\(UUID().uuidString.prefix(8))"), logger: logger)
        let partitions = [KafkaTopicPartition(topic: "retained", partition: 0), KafkaTopicPartition(topic: "retained", partition: 1)]
        let (low, high) = try await consumer.watermarks(of: partitions[0])
        #expect(high == 8)
        #expect(low > 0, "retention deleted the front of the partition")
        #expect(try await consumer.committedOffsets(for: partitions).isEmpty, "the group never committed")
        let waiting = try await CommandConsumer.waitingCommands(consumer, on: partitions)
        #expect(waiting == high - low, "what retention deleted is not waiting (the old count was \(high))")
        await consumer.close()
        await producer.close()
        cluster.stop()
    }

    /// The mock cluster never deletes a partition's last message set, so "retention deleted
    /// everything" (low = high) is checked on the computation itself.
    @Test func waitingIsZeroWhenRetentionDeletedEverythingComputedBecauseTheMockKeepsTheLastMessageSet() {
        #expect(CommandConsumer.waiting(committed: nil, low: 1000, high: 1000) == 0)
        #expect(CommandConsumer.waiting(committed: 40, low: 1000, high: 1000) == 0, "committed before what retention deleted")
        #expect(CommandConsumer.waiting(committed: nil, low: 0, high: 7) == 7)
        #expect(CommandConsumer.waiting(committed: 5, low: 10, high: 20) == 10)
        #expect(CommandConsumer.waiting(committed: 15, low: 10, high: 20) == 5)
        #expect(CommandConsumer.waiting(committed: 20, low: 10, high: 20) == 0)
    }

    // MARK: topic creation

    @Test func theBrokersDefaultReplicationFactorIsAValidRequestAndABadOneIsRefusedAtStart() async throws {
        // The mock cluster has no CreateTopics: a request that leaves the client is refused by it,
        // while a replication factor librdkafka cannot send fails before (invalid argument).
        let cluster = try MockKafkaCluster(brokers: 1)
        let admin = try KafkaAdmin(configuration: KafkaConfiguration(bootstrapServers: cluster.bootstrapServers))
        let sent = await #expect(throws: KafkaError.self) {
            try await admin.createTopicIfMissing("broker-default", partitions: 3, timeout: .seconds(3))
        }
        let invalid = await #expect(throws: KafkaError.self) {
            try await admin.createTopicIfMissing("invalid", partitions: 3, replicationFactor: -2, timeout: .seconds(3))
        }
        #expect(invalid?.code == KafkaError.invalidArgumentCode && sent?.code != KafkaError.invalidArgumentCode,
                "broker default: \(sent.map(String.init(describing:)) ?? "-"); -2: \(invalid.map(String.init(describing:)) ?? "-")")
        cluster.stop()

        try #require(FileManager.default.isExecutableFile(atPath: ServeProcessTests.binary), "build arrayfsm first (swift build --build-tests)")
        let serve = try ChildProcess([ServeProcessTests.binary, "serve", "--replication-factor", "0"], environment: [
            "ARRAYFSM_DATABASE_URL": "postgres://nobody@127.0.0.1:1/none", "ARRAYFSM_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        ])
        #expect(await serve.wait(timeout: .seconds(20)) == 64, "a usage error")
        #expect(serve.output.contains("the replication factor must be -1 (the broker's default) or at least 1, got 0"), "\(serve.output)")
    }
}
