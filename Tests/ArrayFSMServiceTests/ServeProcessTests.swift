import ArrayFSM
import ArrayFSMService
import ArrayFSMTesting
import ArrayFSMTools
import Foundation
import Testing

/// The `arrayfsm serve` binary as a process, signalled like an operator's supervisor would.
@Suite(.serialized) struct ServeProcessTests {
    let logger = TestPostgres.logger

    /// `arrayfsm`, built next to the test binary by `swift build --build-tests`.
    static let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("arrayfsm").path

    func count(_ db: ArrayDatabase, _ sql: String) async throws -> Int {
        for try await n in try await db.client.query(.init(unsafeSQL: sql)).decode(Int64.self) { return Int(n) }
        return 0
    }

    @Test func sigtermDuringLoadExitsCleanlyWithCommittedOffsetsAndAnEmptyOutbox() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build arrayfsm first (swift build --build-tests)")
        try await TestPostgres.withDatabase { db, url in
            let harness = try ServiceHarness(database: db)
            var messages: [(key: [UInt8]?, value: [UInt8]?)] = []
            for a in 0..<6 {
                let array = try await ArrayFixture.make(db, tasks: 500)
                for (index, task) in array.taskIDs.enumerated() {
                    messages.append((CommandMessage.key(arrayID: array.arrayID), CommandMessage.json("record_array_batch_num", id: "t-\(a)-\(index)", payload: [
                        "array_id": array.arrayID, "task_ids": [task], "task_resources_id": 1, "workflow_run_id": 1])))
                }
            }
            try await harness.produce(messages)

            let serve = try ChildProcess([Self.binary, "serve"], environment: [
                "ARRAYFSM_DATABASE_URL": url.string,
                "ARRAYFSM_BOOTSTRAP_SERVERS": harness.bootstrapServers,
                "ARRAYFSM_GROUP_ID": harness.groupID,
                "ARRAYFSM_COMMANDS_TOPIC": harness.topics.commands,
                "ARRAYFSM_METRICS_PORT": "0",
                "ARRAYFSM_MAX_BATCH": "20",
                "ARRAYFSM_KAFKA_SESSION_TIMEOUT_MS": "6000",
                "ARRAYFSM_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            ])
            defer { serve.signal(SIGKILL); _ = serve.wait() }
            let deadline = ContinuousClock.now + .seconds(60)
            while try await count(db, "SELECT count(*) FROM arrayfsm_processed_command") < 300 && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            // serve's sessions carry its startup parameters (work_mem, application_name).
            #expect(try await count(db, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'arrayfsm serve' AND datname = current_database()") >= 1)
            serve.signal(SIGTERM)
            let code = await serve.wait(timeout: .seconds(60))
            #expect(code == 0, "serve output:\n\(serve.output)")

            let processed = try await count(db, "SELECT count(*) FROM arrayfsm_processed_command")
            #expect(processed >= 300)
            let committed = try await harness.committedOffsets().values.reduce(0, +)
            #expect(committed == processed, "offsets committed for exactly the commands applied")
            #expect(try await count(db, "SELECT count(*) FROM arrayfsm_outbox") == 0, "the outbox was flushed")
            let results = try await harness.read(harness.topics.results) { $0.count >= processed }
            #expect(Set(results.compactMap { $0.json["command_id"] as? String }).count == processed, "every applied command was answered")
            try await harness.shutdown()
        }
    }

    @Test func everyMetricTheDashboardsUseIsExportedAndProbesAnswer() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build arrayfsm first (swift build --build-tests)")
        try await TestPostgres.withDatabase { db, url in
            let harness = try ServiceHarness(database: db)
            let array = try await ArrayFixture.make(db, tasks: 4)
            let port = try ThrowawayPostgres.freePort()
            let serve = try harness.startServerProcess(binary: Self.binary, databaseURL: url, extraEnvironment: ["ARRAYFSM_METRICS_PORT": String(port)])
            defer { serve.signal(SIGKILL); _ = serve.wait() }
            try await harness.produce([
                (CommandMessage.key(arrayID: array.arrayID), CommandMessage.json("record_array_batch_num", id: "m1", payload: [
                    "array_id": array.arrayID, "task_ids": array.taskIDs, "task_resources_id": 1, "workflow_run_id": 1])),
                (CommandMessage.key(arrayID: array.arrayID), Array("garbage".utf8)),
            ])
            _ = try await harness.read(harness.topics.results) { $0.contains { $0.json["command_id"] as? String == "m1" } }
            try await Task.sleep(for: .seconds(6))  // one sampling period of the gauges
            let metrics = try await HTTPGet.text(port: port, path: "/metrics")
            for name in ServiceMetrics.names {
                #expect(metrics.contains("\n\(name)") || metrics.hasPrefix(name), "\(name) is not exported")
            }
            #expect(metrics.contains(#"arrayfsm_commands_total{type="record_array_batch_num",status="ok"} 1"#) ||
                    metrics.contains(#"arrayfsm_commands_total{status="ok",type="record_array_batch_num"} 1"#), "\(metrics)")
            #expect(try await HTTPGet.status(port: port, path: "/health") == 200)
            #expect(try await HTTPGet.status(port: port, path: "/ready") == 200)
            serve.signal(SIGTERM)
            #expect(await serve.wait(timeout: .seconds(60)) == 0)
            try await harness.shutdown()
        }
    }

    @Test func devBrokerPrintsItsAddressServesKcatAndStopsOnSIGTERM() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build arrayfsm first (swift build --build-tests)")
        let broker = try ChildProcess([Self.binary, "dev-broker", "--partitions", "3"])
        defer { broker.signal(SIGKILL); _ = broker.wait() }
        let deadline = ContinuousClock.now + .seconds(20)
        while !broker.output.contains("\n") && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        let address = String(broker.output.split(separator: "\n").first ?? "")
        #expect(address.hasPrefix("127.0.0.1:"))
        let kcat = try ChildProcess(["/usr/bin/kcat", "-b", address, "-L"])
        #expect(kcat.wait() == 0)
        for topic in ["arrayfsm.commands", "arrayfsm.results", "arrayfsm.transitions", "arrayfsm.dlq"] {
            #expect(kcat.output.contains("topic \"\(topic)\" with 3 partitions"), "\(kcat.output)")
        }
        broker.signal(SIGTERM)
        #expect(await broker.wait(timeout: .seconds(20)) == 0)
    }
}
