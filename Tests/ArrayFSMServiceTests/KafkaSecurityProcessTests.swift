import ArrayFSM
import ArrayFSMService
import ArrayFSMTesting
import ArrayFSMTools
import Foundation
import Kafka
import Testing

/// `serve`'s Kafka security properties (`ARRAYFSM_KAFKA_*`) against a real broker process.
///
/// What can be tested here is limited by the brokers this machine has (docs/operations.md, "TLS
/// and SASL"): noida-db speaks SASL/PLAIN but accepts any credentials and has no TLS; librdkafka's
/// mock cluster has neither. So this shows that serve's consumer and producer authenticate with
/// the SASL settings given and then work, and that `security.protocol=SSL`
/// makes them speak TLS — not that a broker refuses wrong credentials.
@Suite(.serialized) struct KafkaSecurityProcessTests {
    static let binary = ServeProcessTests.binary

    @Test func serveSendsSASLPlainCredentialsAndAppliesCommandsAndSpeaksTLSWhenTold() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build arrayfsm first (swift build --build-tests)")
        let broker = try NoidaBroker()
        defer { broker.stop() }
        try await TestPostgres.withDatabase { db, url in
            var topics = Topics()
            topics.commands = "commands-\(UUID().uuidString.prefix(8))"
            let sasl = ["security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN",
                        "sasl.username": "arrayfsm", "sasl.password": "kafka-secret"]
            let admin = try KafkaAdmin(configuration: KafkaConfiguration(bootstrapServers: broker.bootstrapServers, properties: sasl))
            for topic in topics.all { try await admin.createTopicIfMissing(topic, partitions: 2, timeout: .seconds(10)) }
            let harness = try ServiceHarness(database: db, bootstrapServers: broker.bootstrapServers, topics: topics,
                                             groupID: "arrayfsm-sasl-\(UUID().uuidString.prefix(8))")
            var environment = ["ARRAYFSM_LOG_LEVEL": "debug", "ARRAYFSM_KAFKA_DEBUG": "security"]
            for (name, value) in sasl {
                environment["ARRAYFSM_KAFKA_" + name.uppercased().replacingOccurrences(of: ".", with: "_")] = value
            }
            let array = try await ArrayFixture.make(db, tasks: 3)
            let serve = try harness.startServerProcess(binary: Self.binary, databaseURL: url, extraEnvironment: environment)
            defer { serve.signal(SIGKILL); _ = serve.wait() }
            try await harness.produce([(CommandMessage.key(arrayID: array.arrayID), CommandMessage.json("record_array_batch_num", id: "over-sasl", payload: [
                "array_id": array.arrayID, "task_ids": array.taskIDs, "task_resources_id": 1, "workflow_run_id": 1]))])
            let results = try await harness.read(topics.results) { $0.contains { $0.json["command_id"] as? String == "over-sasl" } }
            #expect(results.first { $0.json["command_id"] as? String == "over-sasl" }?.json["status"] as? String == "ok")
            #expect(try await db.taskCounts(arrayID: array.arrayID) == ["Q": 3])
            serve.signal(SIGTERM)
            #expect(await serve.wait(timeout: .seconds(60)) == 0, "\(serve.output)")
            // The consumer's and the relay producer's connections sent their SASL/PLAIN token (at
            // least one bootstrap connection each), and the command went through them.
            let tokens = serve.output.components(separatedBy: "Sending SASL PLAIN (builtin) authentication token").count - 1
            #expect(tokens >= 2, "\(serve.output)")
            #expect(serve.output.contains("sasl_plaintext://\(broker.bootstrapServers)"))
            #expect(!serve.output.contains("kafka-secret"))

            // security.protocol=SSL reaches the clients: they try a TLS handshake, which the
            // plaintext broker cannot answer, and nothing is consumed.
            let tls = try harness.startServerProcess(binary: Self.binary, databaseURL: url, extraEnvironment: [
                "ARRAYFSM_LOG_LEVEL": "info", "ARRAYFSM_KAFKA_SECURITY_PROTOCOL": "SSL"])
            defer { tls.signal(SIGKILL); _ = tls.wait() }
            let deadline = ContinuousClock.now + .seconds(30)
            while !tls.output.contains("SSL handshake failed") && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(tls.output.contains("SSL handshake failed"), "\(tls.output)")
            try await harness.shutdown()
        }
    }
}
