import ArrayFSM
import ArrayFSMLoad
import ArrayFSMTesting
import ArrayFSMTools
import Foundation
import Kafka
import Testing

@Suite struct GenerateSeedReplayTests {
    let logger = TestPostgres.logger

    func smallSpec() -> LoadSpec {
        var spec = LoadSpec()
        spec.seed = 42
        spec.workflows = 2
        spec.arraysPerWorkflow = 3
        spec.minTasks = 5
        spec.maxTasks = 120
        spec.batchSize = 25
        spec.killFraction = 0.2
        spec.submitFailureFraction = 0.1
        return spec
    }

    func lines(_ spec: LoadSpec) -> [String] {
        var lines: [String] = []
        WorkloadGenerator(spec: spec).generate { lines.append($0.line()) }
        return lines
    }

    @Test func genIsDeterministicForASeedAndValidAgainstTheSchemas() async throws {
        let first = lines(smallSpec())
        #expect(first == lines(smallSpec()))
        var other = smallSpec()
        other.seed = 43
        #expect(first != lines(other))
        #expect(Set(first.map { try! TopicDumpRecord(line: Substring($0)) }.map { String(decoding: $0.payload!, as: UTF8.self) }).count == first.count)

        let file = FileManager.default.temporaryDirectory.appendingPathComponent("gen-\(UUID().uuidString).jsonl")
        try (first.joined(separator: "\n") + "\n").write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        for kind in ["dump", "command"] {
            let check = try ChildProcess(["/usr/bin/env", "python3", SchemaCheck.repositoryRoot + "/scripts/validate-messages", kind, file.path])
            #expect(await check.wait(timeout: .seconds(120)) == 0, "\(kind): \(check.output)")
        }
    }

    @Test func seedAndReplayThroughServeEndsInTheStateTheSpecImplies() async throws {
        try await TestPostgres.withDatabase { db in
            let spec = smallSpec()
            let seeded = try await Seeder(spec: spec).seed(db.client, logger: logger)
            #expect(seeded.arrays == 6)
            await #expect(throws: Seeder.AlreadySeeded.self) { try await Seeder(spec: spec).seed(db.client, logger: logger) }

            let harness = try ServiceHarness(database: db)
            try harness.startServer()
            var records: [String] = []
            let expectations = WorkloadGenerator(spec: spec, topic: harness.topics.commands).generate { records.append($0.line()) }
            try await Replayer(producer: harness.producer, topic: harness.topics.commands).replay(lines: records.map { Substring($0) })
            let ids = Set(records.map { (try! JSONSerialization.jsonObject(with: Data(try! TopicDumpRecord(line: Substring($0)).payload!)) as! [String: Any])["command_id"] as! String })
            let results = try await harness.read(harness.topics.results, timeout: .seconds(120)) { records in
                Set(records.compactMap { $0.json["command_id"] as? String }).isSuperset(of: ids)
            }
            #expect(results.allSatisfy { $0.json["status"] as? String == "ok" }, "\(results.filter { $0.json["status"] as? String != "ok" }.prefix(3).map(\.json))")

            for expectation in expectations {
                let instances = try await db.taskInstances(arrayID: expectation.arrayID)
                var byBatch: [Int32: [TaskInstanceRow]] = [:]
                for instance in instances { byBatch[instance.batchNumber, default: []].append(instance) }
                #expect(Set(byBatch.keys) == Set(expectation.batchSizes.keys))
                for (batch, status) in expectation.batchStatus {
                    let rows = byBatch[batch] ?? []
                    #expect(rows.count == expectation.batchSizes[batch])
                    #expect(rows.allSatisfy { $0.status == status }, "array \(expectation.arrayID) batch \(batch)")
                    if status == "O" {
                        #expect(rows.allSatisfy { $0.distributorID?.hasSuffix("_\($0.stepID)") == true && $0.stdout != nil })
                    }
                }
                let tasks = try await db.taskCounts(arrayID: expectation.arrayID)
                let launched = expectation.batchStatus.filter { $0.value == "O" }.keys.reduce(0) { $0 + expectation.batchSizes[$1]! }
                #expect(tasks["O", default: 0] == launched)
                #expect(tasks.values.reduce(0, +) == expectation.batchSizes.values.reduce(0, +))
            }
            try await harness.shutdown()
        }
    }
}
