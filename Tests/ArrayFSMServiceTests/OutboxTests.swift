import ArrayFSM
import ArrayFSMService
import ArrayFSMTesting
import ArrayFSMTools
import Foundation
import Kafka
import PostgresNIO
import Testing

/// The outbox against its own producers: per-key order with rounds failing in flight, rows that
/// cannot be delivered (parked, listed, requeued, dropped), and back-pressure on the consumer.
/// Real PostgreSQL, librdkafka's mock cluster.
@Suite(.serialized) struct OutboxTests {
    let logger = TestPostgres.logger

    /// One record command per task, `arrays` interleaved (so every array's key has many events).
    func recordCommands(_ arrays: [ArrayFixture], prefix: String) -> [(key: [UInt8]?, value: [UInt8]?)] {
        var messages: [(key: [UInt8]?, value: [UInt8]?)] = []
        for index in 0..<arrays[0].taskIDs.count {
            for (a, array) in arrays.enumerated() {
                messages.append((CommandMessage.key(arrayID: array.arrayID), CommandMessage.json(
                    "record_array_batch_num", id: "\(prefix)-\(a)-\(index)", payload: [
                        "array_id": array.arrayID, "task_ids": [array.taskIDs[index]], "task_resources_id": 1, "workflow_run_id": 1])))
            }
        }
        return messages
    }

    /// Holds the relay's advisory lock while `body` runs: no relay publishes meanwhile.
    func withRelayLocked<Result: Sendable>(_ db: ArrayDatabase, _ body: () async throws -> Result) async throws -> Result {
        try await db.client.withConnection { connection in
            try await connection.query("SELECT pg_advisory_lock(\(OutboxRelay.lockKey))", logger: logger)
            do {
                let result = try await body()
                try await connection.query("SELECT pg_advisory_unlock(\(OutboxRelay.lockKey))", logger: logger)
                return result
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(OutboxRelay.lockKey))", logger: logger)
                throw error
            }
        }
    }

    func count(_ db: ArrayDatabase, _ sql: PostgresQuery) async throws -> Int {
        for try await count in try await db.client.query(sql, logger: logger).decode(Int64.self) { return Int(count) }
        return 0
    }

    func processed(_ db: ArrayDatabase) async throws -> Int {
        try await count(db, "SELECT count(*) FROM arrayfsm_processed_command")
    }

    /// Waits until `condition` holds, up to `timeout`; returns whether it did.
    func eventually(_ timeout: Duration = .seconds(60), _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return try await condition()
    }

    /// Event ids per "topic key", in outbox (commit) order.
    func outboxOrder(_ db: ArrayDatabase) async throws -> [String: [String]] {
        var order: [String: [String]] = [:]
        let rows = try await db.client.query(
            """
            SELECT topic, encode(coalesce(key, ''), 'escape'), convert_from(value, 'UTF8')::jsonb ->> 'event_id'
            FROM arrayfsm_outbox ORDER BY id
            """, logger: logger)
        for try await (topic, key, eventID) in rows.decode((String, String, String?).self) {
            order["\(topic) \(key)", default: []].append(eventID ?? "?")
        }
        return order
    }

    /// Event ids per "topic key" as read from the topics, first occurrences only (re-published
    /// copies come later and are fine), in partition order.
    func topicOrder(_ harness: ServiceHarness, expecting expected: [String: [String]]) async throws -> [String: [String]] {
        var order: [String: [String]] = [:]
        for topic in [harness.topics.results, harness.topics.transitions] {
            let wanted = expected.filter { $0.key.hasPrefix(topic + " ") }.values.reduce(0) { $0 + $1.count }
            var seen = Set<String>()
            let records = try await harness.read(topic, timeout: .seconds(90)) { records in
                Set(records.compactMap { $0.json["event_id"] as? String }).count >= wanted
            }
            for record in records.sorted(by: { ($0.partition, $0.offset) < ($1.partition, $1.offset) }) {
                guard let id = record.json["event_id"] as? String, seen.insert(id).inserted else { continue }
                order["\(topic) \(String(decoding: record.key ?? [], as: UTF8.self))", default: []].append(id)
            }
        }
        return order
    }

    @Test(arguments: [Int32(87), 10, 29])
    func oneArraysEventsStayInCommitOrderWhenAnEarlierRoundFailsAndALaterOneSucceeds(_ code: Int32) async throws {
        try await TestPostgres.withDatabase { db in
            let harness = try ServiceHarness(database: db)
            let server = try harness.startServer { $0.relayBatch = 25 }  // many rounds, several in flight
            var arrays: [ArrayFixture] = []
            for _ in 0..<4 { arrays.append(try await ArrayFixture.make(db, tasks: 60)) }
            let messages = recordCommands(arrays, prefix: "o")
            let expected = try await withRelayLocked(db) {
                try await harness.produce(messages)
                #expect(try await eventually { try await processed(db) == messages.count })
                let order = try await outboxOrder(db)
                // The relay's first produce requests are refused (the error is permanent for
                // librdkafka) while later rounds are already on their way.
                try harness.cluster?.pushRequestErrors(apiKey: 0, [code, code])
                return order
            }
            let got = try await topicOrder(harness, expecting: expected)
            let failures = server.relay.deliveryFailures.load(ordering: .relaxed)
            print("code \(code): \(failures) failed deliveries, \(server.relay.published.load(ordering: .relaxed)) published")
            #expect(failures > 0, "the refusals hit the relay")
            #expect(Set(got.keys) == Set(expected.keys))
            for (key, ids) in expected {
                #expect(got[key] == ids, "per-key order of \(key): first occurrences on the topic must follow commit order")
            }
            try await harness.shutdown()
            #expect(try await db.client.withConnection { try await Outbox.depth(on: $0, logger: logger) } == 0)
        }
    }

    /// `arrayfsm`, built next to the test binary by `swift build --build-tests`.
    static let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("arrayfsm").path

    /// Runs `arrayfsm outbox …` on the test database; returns its output.
    func outboxCommand(_ arguments: [String], url: DatabaseURL) async throws -> String {
        let child = try ChildProcess([Self.binary, "outbox"] + arguments + ["--database-url", url.string])
        let status = await child.wait(timeout: .seconds(60))
        #expect(status == 0, "arrayfsm outbox \(arguments.joined(separator: " ")): \(child.output)")
        return child.output
    }

    /// Two rows larger than the relay producer's `message.max.bytes` (the client refuses them:
    /// `MSG_SIZE_TOO_LARGE`) sit in the outbox while commands flow: the commands' events are all
    /// published meanwhile, the rows are parked with their error after `parkAfter`, `outbox list`
    /// shows them, one is made deliverable and requeued (and then published), the other dropped.
    @Test func rowsThatCannotBeDeliveredAreParkedWhileTheRestFlowOn() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build arrayfsm first (swift build --build-tests)")
        try await TestPostgres.withDatabase { db, url in
            let harness = try ServiceHarness(database: db)
            let server = try harness.startServer { $0.outboxParkAfter = .seconds(2) }
            let arrays = [try await ArrayFixture.make(db, tasks: 30), try await ArrayFixture.make(db, tasks: 30)]
            let results = harness.topics.results
            // Two keys of their own on the results topic, and one of an array's (held behind it,
            // then flowing once it is parked).
            for key in ["big-a", "big-b"] {
                try await db.client.query(
                    """
                    INSERT INTO arrayfsm_outbox (topic, key, value)
                    VALUES (\(results), convert_to(\(key), 'UTF8'), convert_to(repeat('x', 1100000), 'UTF8'))
                    """, logger: logger)
            }
            let messages = recordCommands(arrays, prefix: "p")
            // Commands keep coming for a while, so rows are delivered around the big rows' retries.
            for start in stride(from: 0, to: messages.count, by: 4) {
                try await harness.produce(Array(messages[start..<min(start + 4, messages.count)]))
                try await Task.sleep(for: .milliseconds(150))
            }
            let ids = Set(messages.map { (try! JSONSerialization.jsonObject(with: Data($0.value!)) as! [String: Any])["command_id"] as! String })
            let published = try await harness.read(results, timeout: .seconds(60)) { records in
                Set(records.compactMap { $0.json["command_id"] as? String }).isSuperset(of: ids)
            }
            #expect(Set(published.compactMap { $0.json["command_id"] as? String }).isSuperset(of: ids),
                    "every command's result published while the big rows fail")
            #expect(try await eventually(.seconds(30)) {
                try await db.client.withConnection { try await Outbox.parked(on: $0, logger: logger) }.count == 2
            }, "both big rows parked")
            let parked = try await db.client.withConnection { try await Outbox.parked(on: $0, logger: logger) }
            for row in parked {
                #expect(row.topic == results)
                #expect(row.size == 1_100_000)
                #expect(row.attempts >= 3)
                #expect(row.error.contains("MSG_SIZE_TOO_LARGE"), "the client's error is kept: \(row.error)")
                if let first = row.firstFailedAt, let last = row.lastFailedAt { #expect(last.timeIntervalSince(first) >= 2) }
            }
            #expect(server.relay.parked.load(ordering: .relaxed) == 2)
            #expect(server.relay.deliveryFailures.load(ordering: .relaxed) >= 6)
            #expect(try await db.client.withConnection { try await Outbox.depth(on: $0, logger: logger) } == 0,
                    "parked rows are not waiting")

            let listed = try await outboxCommand(["list"], url: url)
            let a = parked[0].id, b = parked[1].id
            #expect(listed.contains("\(a)\t\(results)\tbig-a\t1100000\t"), "\(listed)")
            #expect(listed.contains("\(b)\t\(results)\tbig-b\t1100000\t"))
            #expect(listed.contains("MSG_SIZE_TOO_LARGE"))

            // The operator fixes the cause (here: the event itself), then requeues; b is dropped.
            try await db.client.query("UPDATE arrayfsm_outbox_parked SET value = convert_to('{\"fixed\": true}', 'UTF8') WHERE id = \(a)", logger: logger)
            #expect(try await outboxCommand(["requeue", "--id", String(a)], url: url).contains("requeued 1 row: \(a)"))
            let fixed = try await harness.read(results, timeout: .seconds(30)) { records in
                records.contains { $0.key == Array("big-a".utf8) }
            }
            #expect(fixed.contains { $0.key == Array("big-a".utf8) && $0.json["fixed"] as? Bool == true }, "requeued, tried again, published")
            #expect(try await outboxCommand(["drop", "--id", String(a), String(b)], url: url).contains("dropped 1 row: \(b)"),
                    "only parked rows are dropped")
            #expect(try await count(db, "SELECT count(*) FROM arrayfsm_outbox") == 0)
            try await harness.shutdown()
        }
    }

    /// The relay cannot publish (another session holds its lock), so the outbox fills: at the
    /// limit the consumer pauses (stops applying, stays in the group past max.poll.interval.ms,
    /// offsets stop), and once the relay publishes again it resumes and applies the rest.
    @Test func aFullOutboxPausesTheConsumerUntilTheRelayCatchesUp() async throws {
        try await TestPostgres.withDatabase { db in
            let harness = try ServiceHarness(database: db)
            let server = try harness.startServer {
                $0.maxBatch = 5
                $0.maxOutboxRows = 40
                $0.outboxCheckInterval = .zero  // before every batch
            }
            let array = try await ArrayFixture.make(db, tasks: 150)
            let messages = recordCommands([array], prefix: "b")  // 2 events each: a result, a transition
            let ids = Set(messages.map { (try! JSONSerialization.jsonObject(with: Data($0.value!)) as! [String: Any])["command_id"] as! String })
            try await withRelayLocked(db) {
                try await harness.produce(messages)
                #expect(try await eventually { server.consumer.isPaused }, "paused at the limit")
                let atPause = try await processed(db)
                // Longer than max.poll.interval.ms (10 s in the harness): a member that stopped
                // polling would have left the group by now.
                try await Task.sleep(for: .seconds(12))
                let later = try await processed(db)
                #expect(later == atPause, "nothing applied while paused")
                #expect(later < messages.count)
                let waiting = try await db.client.withConnection { try await Outbox.depth(on: $0, logger: logger) }
                print("paused with \(waiting) rows waiting, \(later) commands applied")
                #expect(waiting > 40 && waiting <= 40 + 3 * 5 * 2, "stopped at the limit (a few batches over at most): \(waiting)")
                #expect(server.consumer.isPaused)
                #expect(!server.consumer.assignedPartitions.isEmpty, "still in the group")
                #expect(try await harness.committedOffsets().values.reduce(0, +) <= Int64(later))
            }
            let byID = try await harness.read(harness.topics.results, timeout: .seconds(90)) { records in
                Set(records.compactMap { $0.json["command_id"] as? String }).isSuperset(of: ids)
            }
            #expect(Set(byID.compactMap { $0.json["command_id"] as? String }).isSuperset(of: ids), "resumed and applied the rest")
            #expect(try await processed(db) == messages.count)
            #expect(!server.consumer.isPaused)
            try await harness.stopServers()
            #expect(try await harness.committedOffsets().values.reduce(0, +) == Int64(messages.count))
            try await harness.shutdown()
        }
    }
}
