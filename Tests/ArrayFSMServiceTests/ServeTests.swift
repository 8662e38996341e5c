import ArrayFSM
import ArrayFSMService
import ArrayFSMTesting
import ArrayFSMTools
import Foundation
import Kafka
import Testing

/// `serve` end to end: real PostgreSQL, a real Kafka-protocol broker (librdkafka's mock cluster).
@Suite(.serialized) struct ServeTests {
    let logger = TestPostgres.logger

    /// Results by command id (parts merged into a list), read until every id has all its parts.
    func results(_ harness: ServiceHarness, for ids: Set<String>, timeout: Duration = .seconds(90)) async throws -> [String: [[String: Any]]] {
        let records = try await harness.read(harness.topics.results, timeout: timeout) { records in
            Set(records.compactMap { $0.json["command_id"] as? String }).isSuperset(of: ids)
        }
        var byID: [String: [[String: Any]]] = [:]
        for record in records {
            let event = record.json
            byID[event["command_id"] as? String ?? "?", default: []].append(event)
        }
        return byID
    }

    @Test func aReplyToTheCommandsTopicIsRefusedAndNeverLoops() async throws {
        try await TestPostgres.withDatabase { db in
            let harness = try ServiceHarness(database: db)
            try harness.startServer()
            let array = try await ArrayFixture.make(db, tasks: 1)
            let key = CommandMessage.key(arrayID: array.arrayID)
            // The command that used to make serve answer into its own input, forever.
            try await harness.produce([
                (key, CommandMessage.json("get_array_max_concurrently_running", id: "L", payload: ["array_id": array.arrayID],
                                          replyTo: harness.topics.commands)),
                (key, CommandMessage.json("get_array_max_concurrently_running", id: "R", payload: ["array_id": array.arrayID],
                                          replyTo: "arrayfsm.replies.test")),
            ])
            let results = try await results(harness, for: ["L", "R"])
            #expect(results["L"]?.map { ($0["error"] as? [String: Any])?["code"] as? String } == ["reply_to_not_allowed"])
            #expect(results["R"]?.map { $0["status"] as? String } == ["ok"])
            let replies = try await harness.read("arrayfsm.replies.test", timeout: .seconds(30)) { !$0.isEmpty }
            #expect(replies.map { $0.json["command_id"] as? String } == ["R"])
            // Give a loop time to show: the commands topic still holds exactly what was produced.
            try await Task.sleep(for: .seconds(3))
            let commands = try await harness.read(harness.topics.commands, timeout: .seconds(5)) { $0.count > 2 }
            #expect(commands.count == 2)
            try await harness.shutdown()
        }
    }

    @Test func everyCommandTypeThroughKafkaWithEventsAndRows() async throws {
        try await TestPostgres.withDatabase { db in
            let harness = try ServiceHarness(database: db)
            try harness.startServer()
            let arrays = [try await ArrayFixture.make(db, tasks: 30), try await ArrayFixture.make(db, tasks: 30)]
            var phaseA: [(key: [UInt8]?, value: [UInt8]?)] = [
                (CommandMessage.key(workflowID: 5), CommandMessage.json("add_array", id: "add", payload: [
                    "workflow_id": 5, "task_template_version_id": 6, "max_concurrently_running": 100, "name": "new"])),
            ]
            for (a, array) in arrays.enumerated() {
                let key = CommandMessage.key(arrayID: array.arrayID)
                for chunk in 0..<3 {
                    phaseA.append((key, CommandMessage.json("record_array_batch_num", id: "rec-\(a)-\(chunk)", payload: [
                        "array_id": array.arrayID, "task_ids": Array(array.taskIDs[(chunk * 10)..<(chunk * 10 + 10)]),
                        "task_resources_id": 1, "workflow_run_id": 1])))
                }
                phaseA.append((key, CommandMessage.json("get_array_max_concurrently_running", id: "max-\(a)", payload: ["array_id": array.arrayID])))
            }
            phaseA.append((CommandMessage.key(workflowID: 5), CommandMessage.json("get_array_max_concurrently_running", id: "max-wf", payload: [
                "workflow_id": 5, "task_template_version_id": 6])))
            try await harness.produce(phaseA)
            let idsA = Set(phaseA.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.value!)) as? [String: Any])?["command_id"] as? String })
            var byID = try await results(harness, for: idsA)
            #expect(Set(byID.keys) == idsA)
            #expect(byID.values.allSatisfy { $0.allSatisfy { $0["status"] as? String == "ok" } })
            #expect((byID["max-wf"]![0]["result"] as! [String: Any])["max_concurrently_running"] as? Int == 100)
            #expect((byID["rec-1-2"]![0]["result"] as! [String: Any])["batches"].map { ($0 as! [[String: Any]])[0]["batch_number"] as? Int } == 3,
                    "per-key order: the third record command of an array opens batch 3")

            // Phase B: the distributor's side, per batch; batch 3 of array 0 fails to submit, batch 2 is killed.
            var phaseB: [(key: [UInt8]?, value: [UInt8]?)] = []
            for (a, array) in arrays.enumerated() {
                let key = CommandMessage.key(arrayID: array.arrayID)
                let instances = try await db.taskInstances(arrayID: array.arrayID)
                for batch in 1...3 {
                    phaseB.append((key, CommandMessage.json("instantiate_array_batch", id: "inst-\(a)-\(batch)", payload: ["array_id": array.arrayID, "batch_number": batch])))
                    if a == 0 && batch == 3 {
                        phaseB.append((key, CommandMessage.json("log_array_submit_failed", id: "fail-\(a)-\(batch)", payload: ["array_id": array.arrayID, "batch_number": batch])))
                        continue
                    }
                    phaseB.append((key, CommandMessage.json("transition_array_to_launched", id: "launch-\(a)-\(batch)", payload: [
                        "array_id": array.arrayID, "batch_number": batch, "next_report_increment": 279])))
                    var map: [String: String] = [:]
                    for instance in instances where instance.batchNumber == batch { map[String(instance.id)] = "77\(batch)_\(instance.stepID)" }
                    phaseB.append((key, CommandMessage.json("log_array_distributor_id", id: "dist-\(a)-\(batch)", payload: [
                        "array_id": array.arrayID, "distributor_ids": map])))
                }
            }
            try await harness.produce(phaseB)
            let idsB = Set(phaseB.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.value!)) as? [String: Any])?["command_id"] as? String })
            byID = try await results(harness, for: idsB)
            #expect(byID.values.allSatisfy { $0.allSatisfy { $0["status"] as? String == "ok" } })
            #expect((byID["launch-1-2"]![0]["result"] as! [String: Any])["task_instances"] as? Int == 10)
            #expect(try await db.taskInstanceCounts(arrayID: arrays[0].arrayID) == ["O": 20, "W": 10])
            #expect(try await db.taskInstanceCounts(arrayID: arrays[1].arrayID) == ["O": 30])

            // Kill path: batch 2 of array 1 told to kill itself (as the resume path does), then transition_to_killed.
            let killIDs = try await db.taskInstances(arrayID: arrays[1].arrayID).filter { $0.batchNumber == 2 }.map(\.id)
            try await db.setTaskInstanceStatus(killIDs, to: .killSelf)
            try await harness.produce([(CommandMessage.key(arrayID: arrays[1].arrayID), CommandMessage.json(
                "transition_to_killed", id: "kill", payload: ["array_id": arrays[1].arrayID, "batch_number": 2]))])
            byID = try await results(harness, for: ["kill"])
            #expect((byID["kill"]![0]["result"] as! [String: Any])["tasks"] as? Int == 10)
            #expect(try await db.taskCounts(arrayID: arrays[1].arrayID) == ["O": 20, "F": 10])
            #expect(try await db.taskInstances(arrayID: arrays[1].arrayID).filter { $0.status == "O" }.allSatisfy { $0.distributorID != nil })

            // Transition events: counts per (entity, from, to) add up to the rows moved. Every
            // command that moved rows must have been read: partitions arrive in any order, so the
            // kill's event can come before an earlier command's on another partition.
            let moving = idsA.union(idsB).filter { !$0.hasPrefix("max") && !$0.hasPrefix("dist") && $0 != "add" }.union(["kill"])
            let transitions = try await harness.read(harness.topics.transitions, timeout: .seconds(30)) { records in
                Set(records.compactMap { $0.json["command_id"] as? String }).isSuperset(of: moving)
            }
            var moved: [String: Int] = [:]
            for record in transitions {
                let event = record.json
                moved["\(event["entity"]!):\(event["from"] as? String ?? "new")->\(event["to"]!)", default: 0] += event["count"] as! Int
                #expect(record.key == Array(String(event["array_id"] as! Int).utf8), "keyed by array id")
            }
            #expect(moved["task_instance:new->Q"] == 60)
            #expect(moved["task_instance:I->O"] == 50)
            #expect(moved["task_instance:I->W"] == 10)
            #expect(moved["task_instance:K->F"] == 10)
            #expect(moved["task:O->F"] == 10)

            try await SchemaCheck.validate("result", try await harness.read(harness.topics.results, timeout: .seconds(10)) { $0.count >= idsA.count + idsB.count + 1 })
            try await SchemaCheck.validate("transition", transitions)
            try await harness.shutdown()
            #expect(try await db.client.withConnection { try await Outbox.depth(on: $0, logger: logger) } == 0)
        }
    }

    /// The distributor's Q → I step across arrays, several commands in a row (applied as one run).
    @Test func instantiateTaskInstancesAnswersJobmonsBatchesThroughKafka() async throws {
        try await TestPostgres.withDatabase { db in
            let harness = try ServiceHarness(database: db)
            try harness.startServer()
            var instances: [TaskInstanceRow] = []
            var arrayIDs: [Int64] = []
            for _ in 0..<2 {
                let array = try await ArrayFixture.make(db, tasks: 4)
                _ = try await array.queueAll(db, chunkSize: 2)
                arrayIDs.append(array.arrayID)
                instances += try await db.taskInstances(arrayID: array.arrayID)
            }
            let ids = instances.map(\.id)
            let commands = [Array(ids[0..<3]), Array(ids[3..<8]), [ids[0]]].enumerated().map { n, list in
                (CommandMessage.key(taskInstanceIDs: list),
                 CommandMessage.json("instantiate_task_instances", id: "ti-\(n)", payload: ["task_instance_ids": list]))
            }
            try await harness.produce(commands)
            let byID = try await results(harness, for: ["ti-0", "ti-1", "ti-2"])
            let batches = byID.mapValues { events in ((events[0]["result"] as? [String: Any])?["task_instance_batches"] as? [[Any]]) ?? [] }
            #expect(batches["ti-0"]?.map { [$0[0] as? Int, $0[2] as? Int, ($0[4] as? [Int])?.count] } == [
                [Int(arrayIDs[0]), 1, 2], [Int(arrayIDs[0]), 2, 1]])
            #expect(batches["ti-1"]?.count == 3)
            #expect(batches["ti-2"]?.map { $0[4] as? [Int] } == [[Int(ids[0])]], "already I: answered again")
            #expect(try await db.taskInstanceCounts(arrayID: arrayIDs[0]) == ["I": 4])
            #expect(try await db.taskCounts(arrayID: arrayIDs[1]) == ["I": 4])
            try await SchemaCheck.validate("result", try await harness.read(harness.topics.results, timeout: .seconds(10)) { $0.count >= 3 })
            try await SchemaCheck.validate("command", try await harness.read(harness.topics.commands, timeout: .seconds(10)) { $0.count >= 3 })
            try await harness.shutdown()
        }
    }

    @Test func theSameCommandProducedTwiceIsAppliedOnceAndAnsweredTwiceIdentically() async throws {
        try await TestPostgres.withDatabase { db in
            let harness = try ServiceHarness(database: db)
            try harness.startServer()
            let array = try await ArrayFixture.make(db, tasks: 5)
            let command = CommandMessage.json("record_array_batch_num", id: "twice", payload: [
                "array_id": array.arrayID, "task_ids": array.taskIDs, "task_resources_id": 1, "workflow_run_id": 1])
            try await harness.produce([(CommandMessage.key(arrayID: array.arrayID), command)])
            _ = try await results(harness, for: ["twice"])
            try await harness.produce([(CommandMessage.key(arrayID: array.arrayID), command)])
            let records = try await harness.read(harness.topics.results) { $0.count >= 2 }
            #expect(records.count == 2)
            #expect(records[0].value == records[1].value)
            #expect(try await db.taskInstances(arrayID: array.arrayID).count == 5)
            try await harness.shutdown()
        }
    }

    @Test func aThousandCommandsWithOnePercentGarbage() async throws {
        try await TestPostgres.withDatabase { db in
            let harness = try ServiceHarness(database: db)
            try harness.startServer()
            let array = try await ArrayFixture.make(db, tasks: 990)
            let key = CommandMessage.key(arrayID: array.arrayID)
            var messages: [(key: [UInt8]?, value: [UInt8]?)] = []
            var good = 0
            for index in 0..<1000 {
                if index % 100 == 50 {
                    messages.append((key, Array("{not json \(index)".utf8)))
                } else {
                    messages.append((key, CommandMessage.json("record_array_batch_num", id: "g-\(good)", payload: [
                        "array_id": array.arrayID, "task_ids": [array.taskIDs[good]], "task_resources_id": 1, "workflow_run_id": 1])))
                    good += 1
                }
            }
            try await harness.produce(messages)
            let byID = try await results(harness, for: Set((0..<990).map { "g-\($0)" }))
            #expect(byID.count == 990)
            let dead = try await harness.read(harness.topics.deadLetters) { $0.count >= 10 }
            #expect(dead.count == 10)
            #expect(dead.allSatisfy { $0.header("arrayfsm-error-code") == "not_json" && $0.value.map { String(decoding: $0, as: UTF8.self) }?.hasPrefix("{not json") == true })
            let instances = try await db.taskInstances(arrayID: array.arrayID)
            #expect(instances.count == 990)
            // One key, one partition: batch numbers follow the produced order exactly.
            #expect(instances.sorted { $0.batchNumber < $1.batchNumber }.map(\.taskID) == array.taskIDs)
            try await harness.stopServers()
            let committed = try await harness.committedOffsets()
            #expect(committed.values.reduce(0, +) == 1000, "every message, good or bad, is behind the committed offset")
            try await harness.shutdown()
        }
    }

    @Test func stoppedMidStreamAndRestartedLosesNothingAndAppliesNothingTwice() async throws {
        try await TestPostgres.withDatabase { db in
            let harness = try ServiceHarness(database: db)
            let first = try harness.startServer { $0.maxBatch = 50 }
            var arrays: [ArrayFixture] = []
            for _ in 0..<8 { arrays.append(try await ArrayFixture.make(db, tasks: 250)) }
            var messages: [(key: [UInt8]?, value: [UInt8]?)] = []
            for index in 0..<250 {
                for (a, array) in arrays.enumerated() {
                    messages.append((CommandMessage.key(arrayID: array.arrayID), CommandMessage.json("record_array_batch_num", id: "s-\(a)-\(index)", payload: [
                        "array_id": array.arrayID, "task_ids": [array.taskIDs[index]], "task_resources_id": 1, "workflow_run_id": 1])))
                }
            }
            try await harness.produce(messages)
            _ = try await harness.read(harness.topics.results, timeout: .seconds(60)) { $0.count >= 300 }
            try await harness.stop(first)
            let processedAtStop = try await processedCount(db)
            #expect(processedAtStop < 2000, "stopped mid-stream")
            try harness.startServer { $0.maxBatch = 50 }
            let all = Set(messages.map { (try! JSONSerialization.jsonObject(with: Data($0.value!)) as! [String: Any])["command_id"] as! String })
            let byID = try await results(harness, for: all, timeout: .seconds(120))
            #expect(Set(byID.keys) == all, "nothing lost")
            #expect(try await processedCount(db) == 2000)
            for array in arrays {
                let instances = try await db.taskInstances(arrayID: array.arrayID)
                #expect(instances.count == 250, "nothing applied twice")
                #expect(instances.map(\.batchNumber).sorted() == Array(1...250))
            }
            try await harness.stopServers()
            #expect(try await harness.committedOffsets().values.reduce(0, +) == 2000)
            try await harness.shutdown()
        }
    }

    /// A broker that forgets the idempotent producer's sequence (noida-db after a process restart does)
    /// makes the relay's producer fail for good: serve stops consuming and fails, so its
    /// supervisor restarts it; the unpublished events wait in the outbox for the next process.
    @Test func aFatalProducerErrorStopsServeAndTheNextOnePublishesWhatWasLeft() async throws {
        try await TestPostgres.withDatabase { db in
            let harness = try ServiceHarness(database: db)
            let first = try harness.startServer()
            let array = try await ArrayFixture.make(db, tasks: 10)
            func launch(_ id: String) -> (key: [UInt8]?, value: [UInt8]?) {
                // Batch 9 was never issued: answered `rejected` after the array row is locked.
                (CommandMessage.key(arrayID: array.arrayID), CommandMessage.json("transition_array_to_launched", id: id, payload: [
                    "array_id": array.arrayID, "batch_number": 9, "next_report_increment": 60]))
            }
            try await harness.produce([launch("before")])
            _ = try await results(harness, for: ["before"])

            // The broker will refuse the next produce request with OUT_OF_ORDER_SEQUENCE_NUMBER (45).
            // It must be the relay's, so the command waits on the array row (held here) until the
            // error is armed; the test's own produce happens before.
            try await db.client.withConnection { connection in
                try await connection.query("BEGIN", logger: logger)
                try await connection.query(#"SELECT id FROM "array" WHERE id = \#(array.arrayID) FOR UPDATE"#, logger: logger)
                try await harness.produce([launch("during")])
                try harness.cluster?.pushRequestErrors(apiKey: 0, [45])
                try await Task.sleep(for: .milliseconds(300))
                try await connection.query("ROLLBACK", logger: logger)
            }
            // Not ready for another reason first is possible (a readiness probe of the database
            // unanswered for 5 s on a loaded machine): wait for this one.
            func producerFailed() -> Bool { first.readiness.obstacles.contains { if case .producerFailed = $0 { true } else { false } } }
            let deadline = ContinuousClock.now + .seconds(60)
            while !producerFailed() && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
            #expect(!first.isReady, "serve stopped consuming")
            #expect(producerFailed(), "not ready for good: \(first.readiness.obstacles)")
            await #expect(throws: KafkaError.self) { try await harness.stop(first) }
            #expect(try await processedCount(db) == 2, "the command was applied before the relay failed")

            try harness.startServer()
            let byID = try await results(harness, for: ["before", "during"])
            #expect(byID["during"]?.first?["status"] as? String == "rejected")
            try await harness.stopServers()
            #expect(try await harness.committedOffsets().values.reduce(0, +) == 2)
            try await harness.shutdown()
        }
    }

    func processedCount(_ db: ArrayDatabase) async throws -> Int {
        for try await count in try await db.client.query("SELECT count(*) FROM arrayfsm_processed_command").decode(Int64.self) {
            return Int(count)
        }
        return 0
    }
}
