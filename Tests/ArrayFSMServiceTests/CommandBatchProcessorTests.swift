import ArrayFSM
import ArrayFSMService
import ArrayFSMTesting
import ArrayFSMTools
import Foundation
import PostgresNIO
import Testing

@Suite struct CommandBatchProcessorTests {
    let logger = TestPostgres.logger

    var offset = Int64(0)

    func message(_ bytes: [UInt8]?, key: [UInt8]? = nil, offset: Int64 = 0) -> IncomingCommand {
        IncomingCommand(topic: "arrayfsm.commands", partition: 0, offset: offset, key: key, value: bytes,
                        headers: [(name: "traceparent", value: Array("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".utf8))])
    }

    func outbox(_ db: ArrayDatabase) async throws -> [OutboxMessage] {
        try await db.client.withConnection { try await Outbox.oldest(100_000, on: $0, logger: logger) }.map(\.message)
    }

    func json(_ bytes: [UInt8]) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(bytes)) as! [String: Any]
    }

    @Test func fullLifecycleThroughCommandsMatchesTheOperations() async throws {
        try await TestPostgres.withDatabase { db in
            let processor = CommandBatchProcessor(database: db)
            let add = CommandMessage.json("add_array", id: "c-add", payload: [
                "workflow_id": 11, "task_template_version_id": 12, "max_concurrently_running": 50, "name": "arr"])
            var outcome = try await processor.process([message(add, key: CommandMessage.key(workflowID: 11))], logger: logger)
            #expect(outcome.commands.map(\.status.rawValue) == ["ok"])
            let result = try json(try await outbox(db).first { $0.topic == "arrayfsm.results" }!.value)
            let arrayID = (result["result"] as! [String: Any])["array_id"] as! Int64
            #expect(result["command_id"] as? String == "c-add")
            #expect(result["event_id"] as? String == "c-add:result")

            let rows = try await db.client.query(
                "INSERT INTO task (workflow_id, array_id) SELECT 11, \(arrayID) FROM generate_series(1, 5) RETURNING id")
            var taskIDs: [Int64] = []
            for try await id in rows.decode(Int64.self) { taskIDs.append(id) }
            let key = CommandMessage.key(arrayID: arrayID)

            outcome = try await processor.process([
                message(CommandMessage.json("record_array_batch_num", id: "c-rec", payload: [
                    "array_id": arrayID, "task_ids": taskIDs, "task_resources_id": 1, "workflow_run_id": 2]), key: key),
                message(CommandMessage.json("instantiate_array_batch", id: "c-inst", payload: ["array_id": arrayID, "batch_number": 1]), key: key),
                message(CommandMessage.json("transition_array_to_launched", id: "c-launch", payload: [
                    "array_id": arrayID, "batch_number": 1, "next_report_increment": 279]), key: key),
                message(CommandMessage.json("get_array_max_concurrently_running", id: "c-max", payload: ["array_id": arrayID]), key: key),
            ], logger: logger)
            #expect(outcome.commands.map(\.status.rawValue) == ["ok", "ok", "ok", "ok"])
            #expect(outcome.transitions[.init(entity: .taskInstance, from: "I", to: "O")] == 5)
            #expect(try await db.taskCounts(arrayID: arrayID) == ["O": 5])
            let instances = try await db.taskInstances(arrayID: arrayID)
            #expect(instances.allSatisfy { $0.status == "O" })

            var distributorIDs: [String: String] = [:]
            for instance in instances { distributorIDs[String(instance.id)] = "900_\(instance.stepID)" }
            try await db.setTaskInstanceStatus(Array(instances.prefix(2).map(\.id)), to: .killSelf)
            outcome = try await processor.process([
                message(CommandMessage.json("log_array_distributor_id", id: "c-dist", payload: [
                    "array_id": arrayID, "distributor_ids": distributorIDs, "stdout": "/o/{distributor_id}"]), key: key),
                message(CommandMessage.json("transition_to_killed", id: "c-kill", payload: ["array_id": arrayID, "batch_number": 1]), key: key),
            ], logger: logger)
            #expect(outcome.commands.map(\.status.rawValue) == ["ok", "ok"])
            #expect(try await db.taskInstances(arrayID: arrayID).map(\.status) == ["F", "F", "O", "O", "O"])
            #expect(try await db.taskInstances(arrayID: arrayID).allSatisfy { $0.stdout == "/o/\($0.distributorID!)" })

            let messages = try await outbox(db)
            let results = try messages.filter { $0.topic == "arrayfsm.results" }.map { try json($0.value) }
            #expect(results.map { $0["command_id"] as! String } == ["c-add", "c-rec", "c-inst", "c-launch", "c-max", "c-dist", "c-kill"])
            #expect(results.allSatisfy { $0["status"] as? String == "ok" })
            let launch = results[3]["result"] as! [String: Any]
            #expect(launch["task_instances"] as? Int == 5 && launch["tasks"] as? Int == 5)
            let kill = results[6]["result"] as! [String: Any]
            #expect(kill["task_instances"] as? Int == 2)
            #expect(messages.filter { $0.topic == "arrayfsm.results" }.allSatisfy { $0.headers == ["traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"] })

            let transitions = try messages.filter { $0.topic == "arrayfsm.transitions" }.map { try json($0.value) }
            var moved: [String: Int] = [:]
            for event in transitions {
                let from = event["from"] as? String ?? "new"
                moved["\(event["entity"]!):\(from)->\(event["to"]!)", default: 0] += event["count"] as! Int
                #expect((event["ids"] as! [Any]).count == event["count"] as! Int)
            }
            #expect(moved == [
                "task:G->Q": 5, "task_instance:new->Q": 5, "task:Q->I": 5, "task_instance:Q->I": 5,
                "task:I->O": 5, "task_instance:I->O": 5, "task:O->F": 2, "task_instance:K->F": 2,
            ])
            #expect(Set(transitions.map { $0["event_id"] as! String }).count == transitions.count)
        }
    }

    @Test func aRepeatedCommandIDIsAppliedOnceAndAnsweredIdentically() async throws {
        try await TestPostgres.withDatabase { db in
            let processor = CommandBatchProcessor(database: db)
            let fixture = try await ArrayFixture.make(db, tasks: 3)
            let command = CommandMessage.json("record_array_batch_num", id: "same-id", payload: [
                "array_id": fixture.arrayID, "task_ids": fixture.taskIDs, "task_resources_id": 1, "workflow_run_id": 1])
            let key = CommandMessage.key(arrayID: fixture.arrayID)
            let first = try await processor.process([message(command, key: key)], logger: logger)
            // Re-delivered alone, then twice more in one batch.
            let second = try await processor.process([message(command, key: key)], logger: logger)
            let third = try await processor.process([message(command, key: key), message(command, key: key)], logger: logger)
            #expect(first.commands.map(\.status.rawValue) == ["ok"])
            #expect(second.commands.map(\.status.rawValue) == ["duplicate"])
            #expect(third.commands.map(\.status.rawValue) == ["duplicate", "duplicate"])
            #expect(try await db.taskInstances(arrayID: fixture.arrayID).count == 3)
            #expect(try await db.tasks(arrayID: fixture.arrayID).allSatisfy { $0.numAttempts == 1 })
            let results = try await outbox(db).filter { $0.topic == "arrayfsm.results" }
            #expect(results.count == 4)
            #expect(Set(results.map(\.value)).count == 1, "every answer is byte-identical")
            #expect(try await outbox(db).filter { $0.topic == "arrayfsm.transitions" }.count == 2, "transitions only once")
        }
    }

    @Test func aReusedCommandIDWithAnotherCommandIsRefusedAndChangesNothing() async throws {
        try await TestPostgres.withDatabase { db in
            let processor = CommandBatchProcessor(database: db)
            let fixture = try await ArrayFixture.make(db, tasks: 3)
            let key = CommandMessage.key(arrayID: fixture.arrayID)
            let payload: [String: Any] = ["array_id": fixture.arrayID, "task_ids": fixture.taskIDs, "task_resources_id": 1, "workflow_run_id": 1]
            let original = CommandMessage.json("record_array_batch_num", id: "same-id", payload: payload)
            _ = try await processor.process([message(original, key: key)], logger: logger)
            let otherPayload = CommandMessage.json("record_array_batch_num", id: "same-id", payload: [
                "array_id": fixture.arrayID, "task_ids": [fixture.taskIDs[0]], "task_resources_id": 9, "workflow_run_id": 9],
                replyTo: "arrayfsm.replies.second-client")
            let otherType = CommandMessage.json("transition_to_killed", id: "same-id", payload: ["array_id": fixture.arrayID, "batch_number": 1])
            // The same bytes with another reply_to and issued_at are still the same command.
            var sameCommand = try json(original)
            sameCommand["reply_to"] = "arrayfsm.replies.retry"
            sameCommand["issued_at"] = "2026-12-06T00:00:00Z"
            let sameBytes = try Self.withPayloadBytes(of: original, in: sameCommand)
            let outcome = try await processor.process([
                message(otherPayload, key: key), message(otherType, key: key), message(original, key: Array("other-key".utf8)),
                message(sameBytes, key: key), message(original, key: key),
            ], logger: logger)
            #expect(outcome.commands.map(\.status.rawValue) == ["rejected", "rejected", "rejected", "duplicate", "duplicate"])
            #expect(try await db.taskInstances(arrayID: fixture.arrayID).count == 3, "nothing applied twice")
            #expect(try await db.tasks(arrayID: fixture.arrayID).allSatisfy { $0.numAttempts == 1 })

            let published = try await outbox(db)
            let refusals = try published.filter { $0.topic == "arrayfsm.results" }.map { try json($0.value) }
                .filter { $0["status"] as? String == "rejected" }
            #expect(refusals.count == 3)
            for refusal in refusals {
                let error = refusal["error"] as! [String: Any]
                #expect(error["code"] as? String == "command_id_reused")
                #expect((error["message"] as! String).contains("record_array_batch_num command applied at"))
                #expect((refusal["event_id"] as! String).hasPrefix("same-id:reused:"), "an event id of its own")
            }
            #expect(Set(refusals.map { $0["event_id"] as! String }).count == 3, "each conflicting command has its own event id")
            // The conflict goes to the new message's own reply topic; the repeat's answer to its own.
            let replies = published.filter { $0.topic.hasPrefix("arrayfsm.replies.") }
            #expect(replies.map(\.topic) == ["arrayfsm.replies.second-client", "arrayfsm.replies.retry"])
            #expect(try json(replies[1].value)["event_id"] as? String == "same-id:result")
            let digests = try await db.client.query(
                "SELECT octet_length(digest) FROM arrayfsm_processed_command WHERE command_id = 'same-id'", logger: logger)
            for try await length in digests.decode(Int32?.self) { #expect(length == 32, "the digest is stored") }
        }
    }

    /// `command` re-encoded with its payload member replaced by the original message's payload bytes.
    static func withPayloadBytes(of original: [UInt8], in command: [String: Any]) throws -> [UInt8] {
        var envelope = command
        envelope["payload"] = "PAYLOAD"
        let text = String(decoding: try JSONSerialization.data(withJSONObject: envelope, options: [.sortedKeys]), as: UTF8.self)
        let source = String(decoding: original, as: UTF8.self)
        let start = source.range(of: "\"payload\":")!.upperBound
        var depth = 0
        var end = start
        for index in source[start...].indices {
            if source[index] == "{" { depth += 1 }
            if source[index] == "}" { depth -= 1; if depth == 0 { end = source.index(after: index); break } }
        }
        return Array(text.replacingOccurrences(of: "\"PAYLOAD\"", with: String(source[start..<end])).utf8)
    }

    @Test func badInputIsAnsweredOrDeadLetteredAndTheRestIsApplied() async throws {
        try await TestPostgres.withDatabase { db in
            let processor = CommandBatchProcessor(database: db, maxMessageBytes: 4096)
            let fixture = try await ArrayFixture.make(db, tasks: 2)
            let key = CommandMessage.key(arrayID: fixture.arrayID)
            let good = CommandMessage.json("record_array_batch_num", id: "good", payload: [
                "array_id": fixture.arrayID, "task_ids": fixture.taskIDs, "task_resources_id": 1, "workflow_run_id": 1])
            let batch: [IncomingCommand] = [
                message([0xFF, 0xFE, 0x00], key: key, offset: 1),
                message(Array("not json".utf8), key: key, offset: 2),
                message(Array("[1,2,3]".utf8), key: key, offset: 3),
                message(Array(#"{"type":"add_array","payload":{}}"#.utf8), key: key, offset: 4),
                message(Array(repeating: 0x20, count: 5000), key: key, offset: 5),
                message(nil, key: key, offset: 6),
                message(CommandMessage.json("no_such_command", id: "r-type", payload: [:]), key: key, offset: 7),
                message(CommandMessage.json("transition_array_to_launched", id: "r-field", payload: [
                    "array_id": "seven", "batch_number": 1, "next_report_increment": 1]), key: key, offset: 8),
                message(CommandMessage.json("transition_array_to_launched", id: "r-neg", payload: [
                    "array_id": fixture.arrayID, "batch_number": 1, "next_report_increment": -5]), key: key, offset: 9),
                message(CommandMessage.json("transition_to_killed", id: "r-batch", payload: [
                    "array_id": fixture.arrayID, "batch_number": 99]), key: key, offset: 10),
                message(CommandMessage.json("record_array_batch_num", id: "r-other", payload: [
                    "array_id": fixture.arrayID, "task_ids": [987_654_321], "task_resources_id": 1, "workflow_run_id": 1]), key: key, offset: 11),
                message(good, key: key, offset: 12),
            ]
            let outcome = try await processor.process(batch, logger: logger)
            #expect(outcome.commands.map(\.status.rawValue) == Array(repeating: "dead_letter", count: 6) + Array(repeating: "rejected", count: 5) + ["ok"])
            #expect(!outcome.fellBackToSingles)
            #expect(try await db.taskCounts(arrayID: fixture.arrayID) == ["Q": 2])

            let messages = try await outbox(db)
            let dead = messages.filter { $0.topic == "arrayfsm.dlq" }
            #expect(dead.map { $0.headers[1] } == ["not_json", "not_json", "not_an_object", "bad_envelope", "too_large", "no_value"])
            #expect(dead[0].value == [0xFF, 0xFE, 0x00], "the original bytes, unchanged")
            #expect(dead.allSatisfy { $0.headers.count == 10 && $0.headers[4] == "arrayfsm-source-topic" && $0.key == key })
            let rejected = try messages.filter { $0.topic == "arrayfsm.results" }.map { try json($0.value) }.filter { $0["status"] as? String == "rejected" }
            let codes = rejected.map { ($0["command_id"] as! String, ($0["error"] as! [String: Any])["code"] as! String) }
            #expect(codes.map(\.0) == ["r-type", "r-field", "r-neg", "r-batch", "r-other"])
            #expect(codes.map(\.1) == ["invalid_argument", "invalid_argument", "invalid_argument", "batch_not_found", "tasks_not_in_array"])
            let fieldMessage = (rejected[1]["error"] as! [String: Any])["message"] as! String
            #expect(fieldMessage.contains("array_id"), "the message names the field: \(fieldMessage)")
        }
    }

    @Test func largeResultsAreSplitIntoPartsThatCarryEveryID() async throws {
        try await TestPostgres.withDatabase { db in
            let processor = CommandBatchProcessor(database: db, maxEventBytes: 4096 + 21 * 100)
            let fixture = try await ArrayFixture.make(db, tasks: 250)
            _ = try await processor.process([
                message(CommandMessage.json("record_array_batch_num", id: "big", payload: [
                    "array_id": fixture.arrayID, "task_ids": fixture.taskIDs, "task_resources_id": 1, "workflow_run_id": 1]))
            ], logger: logger)
            let messages = try await outbox(db)
            let parts = try messages.filter { $0.topic == "arrayfsm.results" }.map { try json($0.value) }
            #expect(parts.count == 5)
            #expect(parts.map { $0["part"] as! Int } == [1, 2, 3, 4, 5])
            #expect(parts.allSatisfy { $0["parts"] as? Int == 5 })
            var tis: [Int64] = []
            var queued: [Int64] = []
            for part in parts {
                let result = part["result"] as! [String: Any]
                for batch in result["batches"] as! [[String: Any]] { tis += (batch["task_instance_ids"] as! [NSNumber]).map(\.int64Value) }
                queued += ((result["tasks_by_status"] as! [String: Any])["Q"] as? [NSNumber] ?? []).map(\.int64Value)
            }
            #expect(queued == fixture.taskIDs)
            #expect(Set(tis) == Set(try await db.taskInstances(arrayID: fixture.arrayID).map(\.id)))
            let transitions = try messages.filter { $0.topic == "arrayfsm.transitions" }.map { try json($0.value) }
            #expect(transitions.reduce(0) { $0 + ($1["count"] as! Int) } == 500)
        }
    }

    @Test func repeatsOfSplitResultsReEmitEachCommandsOwnParts() async throws {
        try await TestPostgres.withDatabase { db in
            let processor = CommandBatchProcessor(database: db, maxEventBytes: 4096 + 21 * 100)
            // Three commands in one batch: split results, a one-part refusal between, split results.
            var commands: [[UInt8]] = []
            for (index, tasks) in [250, 0, 120].enumerated() {
                if tasks == 0 {
                    commands.append(CommandMessage.json("record_array_batch_num", id: "refused", payload: [
                        "array_id": Int64.max, "task_ids": [1], "task_resources_id": 1, "workflow_run_id": 1]))
                    continue
                }
                let fixture = try await ArrayFixture.make(db, tasks: tasks)
                commands.append(CommandMessage.json("record_array_batch_num", id: "big-\(index)", payload: [
                    "array_id": fixture.arrayID, "task_ids": fixture.taskIDs, "task_resources_id": 1, "workflow_run_id": 1]))
            }
            _ = try await processor.process(commands.map { message($0) }, logger: logger)
            let original = try await outbox(db).filter { $0.topic == "arrayfsm.results" }.map(\.value)
            let repeated = try await processor.process(commands.reversed().map { message($0) }, logger: logger)
            #expect(repeated.commands.map(\.status.rawValue) == ["duplicate", "duplicate", "duplicate"])
            let all = try await outbox(db).filter { $0.topic == "arrayfsm.results" }.map(\.value)
            let ids = try original.map { try json($0)["command_id"] as! String }
            #expect(ids.count > 5 && Set(ids) == ["big-0", "refused", "big-2"])
            // The repeats come in reverse command order, each command's parts in their order.
            var expected: [[UInt8]] = []
            for id in ["big-2", "refused", "big-0"] { expected += zip(ids, original).filter { $0.0 == id }.map(\.1) }
            #expect(Array(all.dropFirst(original.count)) == expected)
        }
    }

    @Test func groupedLaunchesAndReadsMatchApplyingThemOneByOne() async throws {
        try await TestPostgres.withDatabase { db in
            let processor = CommandBatchProcessor(database: db)
            // Two identical sets of arrays: one launched through the processor (grouped), one by the operations.
            var grouped: [ArrayFixture] = []
            var single: [ArrayFixture] = []
            for _ in 0..<6 {
                for list in [0, 1] {
                    let fixture = try await ArrayFixture.make(db, tasks: 6)
                    let queued = try await fixture.queueAll(db, chunkSize: 2)
                    for batch in queued.batches {
                        _ = try await db.perform(InstantiateArrayBatch(arrayID: fixture.arrayID, batchNumber: batch.batchNumber), logger: logger)
                    }
                    if list == 0 { grouped.append(fixture) } else { single.append(fixture) }
                }
            }
            // Launch batch 1 of every array, batch 2 of arrays 0 and 1 (same array again: a new run),
            // an unknown batch, an unknown array, and limit reads in between.
            var plan: [(Int, Int32)] = (0..<6).map { ($0, 1) } + [(0, 2), (1, 2), (2, 9)]
            plan.insert((-1, 1), at: 3)
            var messages: [IncomingCommand] = []
            for (n, (array, batch)) in plan.enumerated() {
                let id = array < 0 ? 999_999 : grouped[array].arrayID
                messages.append(message(CommandMessage.json("transition_array_to_launched", id: "l-\(n)", payload: [
                    "array_id": id, "batch_number": batch, "next_report_increment": 60])))
                if n == 5 {
                    for fixture in grouped.prefix(3) {
                        messages.append(message(CommandMessage.json("get_array_max_concurrently_running", id: "m-\(fixture.arrayID)",
                                                                     payload: ["array_id": fixture.arrayID])))
                    }
                }
            }
            let outcome = try await processor.process(messages, logger: logger)
            #expect(outcome.commands.filter { $0.status == .ok }.count == 11)
            #expect(outcome.commands.filter { $0.status == .rejected }.count == 2)

            var expected: [[String: Any]] = []
            for (array, batch) in plan {
                guard array >= 0 else { continue }
                do {
                    let out = try await db.perform(
                        TransitionArrayToLaunched(arrayID: single[array].arrayID, batchNumber: batch, nextReportIncrement: 60), logger: logger)
                    expected.append(["task_instances": out.taskInstanceIDs.count, "tasks": out.taskIDs.count])
                } catch let error as OperationError {
                    expected.append(["code": error.code.rawValue])
                }
            }
            for (g, s) in zip(grouped, single) {
                #expect(try await db.taskInstances(arrayID: g.arrayID).map(\.status) == (try await db.taskInstances(arrayID: s.arrayID).map(\.status)))
                #expect(try await db.tasks(arrayID: g.arrayID).map(\.status) == (try await db.tasks(arrayID: s.arrayID).map(\.status)))
            }
            let results = try await outbox(db).filter { $0.topic == "arrayfsm.results" }.map { try json($0.value) }
            let launches = results.filter { ($0["command_id"] as! String).hasPrefix("l-") && $0["command_id"] as! String != "l-3" }
            let got: [[String: Any]] = launches.map { event in
                if let result = event["result"] as? [String: Any] {
                    return ["task_instances": result["task_instances"] as! Int, "tasks": result["tasks"] as! Int]
                }
                return ["code": (event["error"] as! [String: Any])["code"] as! String]
            }
            #expect(got.map { "\($0.sorted { $0.key < $1.key })" } == expected.map { "\($0.sorted { $0.key < $1.key })" })
            let limits = results.filter { ($0["command_id"] as! String).hasPrefix("m-") }
            #expect(limits.count == 3 && limits.allSatisfy { ($0["result"] as! [String: Any])["max_concurrently_running"] as? Int == 2_147_483_647 })
            let transitions = try await outbox(db).filter { $0.topic == "arrayfsm.transitions" }.map { try json($0.value) }
            #expect(transitions.filter { ($0["command_id"] as! String).hasPrefix("l-") }.reduce(0) { $0 + ($1["count"] as! Int) } == 2 * 2 * 8)
        }
    }

    @Test func groupedQueueingsAndInstantiationsAnswerEachCommand() async throws {
        try await TestPostgres.withDatabase { db in
            let processor = CommandBatchProcessor(database: db)
            var arrays: [ArrayFixture] = []
            for tasks in [3, 4, 2] { arrays.append(try await ArrayFixture.make(db, tasks: tasks)) }
            var messages: [IncomingCommand] = []
            for (n, fixture) in arrays.enumerated() {
                // The third names a task of the first: refused, and only it.
                messages.append(message(CommandMessage.json("record_array_batch_num", id: "r-\(n)", payload: [
                    "array_id": fixture.arrayID, "task_ids": fixture.taskIDs + (n == 2 ? [arrays[0].taskIDs[0]] : []),
                    "task_resources_id": 1, "workflow_run_id": 2])))
            }
            for (n, fixture) in arrays.enumerated() {
                messages.append(message(CommandMessage.json("instantiate_array_batch", id: "i-\(n)", payload: [
                    "array_id": fixture.arrayID, "batch_number": 1])))
            }
            let outcome = try await processor.process(messages, logger: logger)
            #expect(outcome.commands.map(\.status.rawValue) == ["ok", "ok", "rejected", "ok", "ok", "rejected"])
            #expect(Dictionary(uniqueKeysWithValues: outcome.transitions.map { ($0.key.description, $0.value) }) == ["task:G->Q": 7, "task_instance:new->Q": 7, "task:Q->I": 7, "task_instance:Q->I": 7])
            let results = try await outbox(db).filter { $0.topic == "arrayfsm.results" }.map { try json($0.value) }
            #expect(results.map { $0["command_id"] as! String } == ["r-0", "r-1", "r-2", "i-0", "i-1", "i-2"])
            let second = results[1]["result"] as! [String: Any]
            let batches = second["batches"] as! [[String: Any]]
            #expect(batches.count == 1 && (batches[0]["task_instance_ids"] as! [NSNumber]).count == 4)
            #expect(((second["tasks_by_status"] as! [String: Any])["Q"] as! [NSNumber]).map(\.int64Value) == arrays[1].taskIDs)
            #expect((results[2]["error"] as! [String: Any])["code"] as? String == "tasks_not_in_array")
            #expect((results[5]["error"] as! [String: Any])["code"] as? String == "batch_not_found")
            #expect(try await db.taskCounts(arrayID: arrays[0].arrayID) == ["I": 3])
            #expect(try await db.taskCounts(arrayID: arrays[2].arrayID) == ["G": 2])
            #expect(try await db.taskInstanceCounts(arrayID: arrays[1].arrayID) == ["I": 4])
            // Every result before any transition event; each topic in command order.
            let published = try await outbox(db)
            #expect(published.map(\.topic) == Array(repeating: "arrayfsm.results", count: 6) + Array(repeating: "arrayfsm.transitions", count: 8))
            #expect(try published.filter { $0.topic == "arrayfsm.transitions" }.map { try json($0.value)["command_id"] as! String }
                    == ["r-0", "r-0", "r-1", "r-1", "i-0", "i-0", "i-1", "i-1"])
        }
    }

    @Test func resultsOnTheTransitionsTopicKeepTheCommandOrder() async throws {
        try await TestPostgres.withDatabase { db in
            // An operator may give results and transitions one topic.
            var topics = Topics()
            topics.results = "arrayfsm.events"
            topics.transitions = "arrayfsm.events"
            let processor = CommandBatchProcessor(database: db, topics: topics)
            var messages: [IncomingCommand] = []
            for n in 0..<2 {
                let fixture = try await ArrayFixture.make(db, tasks: 2)
                messages.append(message(CommandMessage.json("record_array_batch_num", id: "r-\(n)", payload: [
                    "array_id": fixture.arrayID, "task_ids": fixture.taskIDs, "task_resources_id": 1, "workflow_run_id": 2,
                ])))
            }
            _ = try await processor.process(messages, logger: logger)
            let published = try await outbox(db).map { "\($0.topic) \(try json($0.value)["event_id"] as! String)" }
            #expect(published == [
                "arrayfsm.events r-0:result", "arrayfsm.events r-0:t0", "arrayfsm.events r-0:t1",
                "arrayfsm.events r-1:result", "arrayfsm.events r-1:t0", "arrayfsm.events r-1:t1",
            ])
        }
    }

    @Test func replyTopicsOutsideThePrefixAreRefusedBeforeAnythingIsApplied() async throws {
        try await TestPostgres.withDatabase { db in
            let processor = CommandBatchProcessor(database: db)
            let fixture = try await ArrayFixture.make(db, tasks: 2)
            let key = CommandMessage.key(arrayID: fixture.arrayID)
            let record: [String: Any] = ["array_id": fixture.arrayID, "task_ids": fixture.taskIDs, "task_resources_id": 1, "workflow_run_id": 1]
            let refusedTopics = ["arrayfsm.commands", "arrayfsm.results", "arrayfsm.transitions", "arrayfsm.dlq", "other-team.topic",
                                 "arrayfsm.replies.", "arrayfsm.replie"]
            var batch = refusedTopics.enumerated().map { n, topic in
                message(CommandMessage.json("record_array_batch_num", id: "loop", payload: record, replyTo: topic), key: key, offset: Int64(n))
            }
            // The same id with an allowed reply topic is a new command, applied once.
            batch.append(message(CommandMessage.json("record_array_batch_num", id: "loop", payload: record, replyTo: "arrayfsm.replies.me"),
                                 key: key, offset: 20))
            // A result event read back from a topic: no payload, so not a command; never answered.
            batch.append(message(Array(#"{"event_id":"x:result","command_id":"x","type":"add_array","status":"ok","result":{}}"#.utf8),
                                 key: key, offset: 21))
            let outcome = try await processor.process(batch, logger: logger)
            #expect(outcome.commands.map(\.status.rawValue) == Array(repeating: "rejected", count: refusedTopics.count) + ["ok", "dead_letter"])
            #expect(!outcome.fellBackToSingles)
            #expect(try await db.taskCounts(arrayID: fixture.arrayID) == ["Q": 2])

            let published = try await outbox(db)
            #expect(Set(published.map(\.topic)) == ["arrayfsm.results", "arrayfsm.transitions", "arrayfsm.dlq", "arrayfsm.replies.me"],
                    "nothing to any refused topic")
            let results = try published.filter { $0.topic == "arrayfsm.results" }.map { try json($0.value) }
            let codes = results.compactMap { ($0["error"] as? [String: Any])?["code"] as? String }
            #expect(codes == Array(repeating: "reply_to_not_allowed", count: refusedTopics.count))
            #expect(results.filter { $0["status"] as? String == "rejected" }.allSatisfy { $0["event_id"] as? String == "loop:reply_to_not_allowed" })
            #expect(results.last?["event_id"] as? String == "loop:result")
            #expect(published.filter { $0.topic == "arrayfsm.dlq" }.map { $0.headers[1] } == ["not_a_command"])
        }
    }

    @Test func aCommandThatKeepsFailingOnAnUnexpectedErrorIsAnsweredAndTheRestApplied() async throws {
        try await TestPostgres.withDatabase { db in
            let processor = CommandBatchProcessor(database: db, retryDelay: .milliseconds(1))
            let poisoned = try await ArrayFixture.make(db, tasks: 2)
            let healthy = try await ArrayFixture.make(db, tasks: 2)
            // An internal error (XX000) for one array's tasks: neither the data's fault nor an outage.
            try await db.client.query(
                PostgresQuery(unsafeSQL: """
                CREATE FUNCTION fail_array() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF NEW.array_id = \(poisoned.arrayID) THEN RAISE EXCEPTION 'disk says no' USING ERRCODE = 'XX000'; END IF;
                    RETURN NEW;
                END $$
                """), logger: logger)
            try await db.client.query(
                "CREATE TRIGGER fail_array BEFORE UPDATE ON task FOR EACH ROW EXECUTE FUNCTION fail_array()", logger: logger)
            let batch = [poisoned, healthy].enumerated().map { n, fixture in
                message(CommandMessage.json("record_array_batch_num", id: "c-\(n)", payload: [
                    "array_id": fixture.arrayID, "task_ids": fixture.taskIDs, "task_resources_id": 1, "workflow_run_id": 1]),
                    key: CommandMessage.key(arrayID: fixture.arrayID), offset: Int64(n))
            }
            let outcome = try await processor.process(batch, logger: logger)
            #expect(outcome.fellBackToSingles)
            #expect(outcome.commands.map(\.status.rawValue) == ["rejected", "ok"])
            #expect(try await db.taskCounts(arrayID: poisoned.arrayID) == ["G": 2], "nothing half-applied")
            #expect(try await db.taskCounts(arrayID: healthy.arrayID) == ["Q": 2])
            let results = try await outbox(db).filter { $0.topic == "arrayfsm.results" }.map { try json($0.value) }
            let error = results.first { $0["command_id"] as? String == "c-0" }?["error"] as? [String: Any]
            #expect(error?["code"] as? String == "database_error")
            #expect((error?["message"] as? String)?.contains("XX000 disk says no") == true)
            // Answered for good: a redelivery is a repeat, not another three attempts.
            let again = try await processor.process([batch[0]], logger: logger)
            #expect(again.commands.map(\.status.rawValue) == ["duplicate"])
        }
    }

    @Test func stringsPostgreSQLCannotStoreAreRefusedBeforeAnySQL() async throws {
        try await TestPostgres.withDatabase { db in
            let processor = CommandBatchProcessor(database: db)
            let fixture = try await ArrayFixture.make(db, tasks: 2)
            _ = try await fixture.queueAll(db)
            let instances = try await db.taskInstances(arrayID: fixture.arrayID).map(\.id)
            let long = String(repeating: "x", count: 5000)
            let bad: [(String, String, [String: Any])] = [
                ("nul-name", "add_array", ["workflow_id": 1, "task_template_version_id": 77, "name": "a\u{0}b"]),
                ("long-name", "add_array", ["workflow_id": 1, "task_template_version_id": 78, "name": String(repeating: "é", count: 600)]),
                ("nul-id", "log_array_distributor_id", ["array_id": fixture.arrayID, "distributor_ids": [String(instances[0]): "12\u{0}3"]]),
                ("long-id", "log_array_distributor_id", ["array_id": fixture.arrayID, "distributor_ids": [String(instances[0]): long]]),
                ("nul-stdout", "log_array_distributor_id", ["array_id": fixture.arrayID, "distributor_ids": [String(instances[0]): "1"],
                                                            "stdout": "/out/\u{0}"]),
                ("long-stderr", "log_array_distributor_id", ["array_id": fixture.arrayID, "distributor_ids": [String(instances[0]): "1"],
                                                             "stderr": long]),
                ("nul-by-step", "log_array_distributor_id", ["array_id": fixture.arrayID, "batch_number": 1,
                                                             "distributor_ids_by_step": ["0": "\u{0}"]]),
            ]
            var batch = bad.enumerated().map { n, command in message(CommandMessage.json(command.1, id: command.0, payload: command.2), offset: Int64(n)) }
            batch.append(message(CommandMessage.json("log_array_distributor_id", id: "good", payload: [
                "array_id": fixture.arrayID, "distributor_ids": [String(instances[0]): "42_0"]]), offset: 99))
            let outcome = try await processor.process(batch, logger: logger)
            #expect(!outcome.fellBackToSingles, "applied in one transaction")
            #expect(outcome.commands.map(\.status.rawValue) == Array(repeating: "rejected", count: bad.count) + ["ok"])
            let results = try await outbox(db).filter { $0.topic == "arrayfsm.results" }.map { try json($0.value) }
            #expect(results.prefix(bad.count).allSatisfy { ($0["error"] as? [String: Any])?["code"] as? String == "invalid_argument" })
            #expect(try await db.taskInstances(arrayID: fixture.arrayID).compactMap(\.distributorID) == ["42_0"])
        }
    }

    @Test func aLargeBatchIsDecodedInPiecesAndAnsweredInOrder() async throws {
        try await TestPostgres.withDatabase { db in
            let processor = CommandBatchProcessor(database: db)
            // About 1 MB: decoded on every core. Distributor-id maps for arrays that do not exist
            // (rejected), with undecodable messages and unknown types in between.
            var messages: [IncomingCommand] = []
            var expected: [String] = []
            for n in 0..<48 {
                switch n % 6 {
                case 2:
                    messages.append(message(Array("not json \(n)".utf8), offset: Int64(n)))
                    expected.append("dead_letter")
                case 4:
                    messages.append(message(CommandMessage.json("no_such_type", id: "c-\(n)", payload: [:]), offset: Int64(n)))
                    expected.append("rejected")
                default:
                    var map: [String: String] = [:]
                    for id in 1...1000 { map[String(id)] = "4242_\(id)" }
                    messages.append(message(CommandMessage.json("log_array_distributor_id", id: "c-\(n)", payload: [
                        "array_id": 900_000 + n, "distributor_ids": map]), offset: Int64(n)))
                    expected.append("rejected")
                }
            }
            #expect(messages.reduce(0) { $0 + ($1.value?.count ?? 0) } > 512 * 1024)
            let outcome = try await processor.process(messages, logger: logger)
            #expect(outcome.commands.map(\.status.rawValue) == expected)
            let published = try await outbox(db)
            let answered = try published.filter { $0.topic == "arrayfsm.results" }.map { try json($0.value)["command_id"] as! String }
            #expect(answered == (0..<48).filter { $0 % 6 != 2 }.map { "c-\($0)" })
            let dead = published.filter { $0.topic == "arrayfsm.dlq" }
            #expect(dead.map { String(decoding: $0.value, as: UTF8.self) } == (0..<48).filter { $0 % 6 == 2 }.map { "not json \($0)" })
        }
    }

    @Test func groupedDistributorIDsMatchApplyingThemOneByOne() async throws {
        try await TestPostgres.withDatabase { db in
            let processor = CommandBatchProcessor(database: db)
            var messages: [IncomingCommand] = []
            var singles: [(LogArrayDistributorID, ArrayFixture)] = []
            var pairs: [(ArrayFixture, ArrayFixture)] = []
            let stranger = try await ArrayFixture.make(db, tasks: 1)
            let strangerTI = try await stranger.queueAll(db).batches[0].taskInstanceIDs[0]
            for n in 0..<4 {
                let g = try await ArrayFixture.make(db, tasks: 3)
                let s = try await ArrayFixture.make(db, tasks: 3)
                let gTIs = try await g.queueAll(db).batches[0].taskInstanceIDs
                let sTIs = try await s.queueAll(db).batches[0].taskInstanceIDs
                pairs.append((g, s))
                var gMap: [String: String] = [:]
                var sMap: [Int64: String] = [:]
                for step in 0..<3 {
                    gMap[String(gTIs[step])] = "9\(n)_\(step)"
                    sMap[sTIs[step]] = "9\(n)_\(step)"
                }
                gMap[String(strangerTI)] = "nope"
                sMap[strangerTI] = "nope"
                var payload: [String: Any] = ["array_id": g.arrayID, "distributor_ids": gMap]
                if n % 2 == 0 { payload["stdout"] = "/o/{distributor_id}/{task_instance_id}" }
                messages.append(message(CommandMessage.json("log_array_distributor_id", id: "d-\(n)", payload: payload)))
                singles.append((LogArrayDistributorID(arrayID: s.arrayID, distributorIDs: sMap,
                                                      stdout: n % 2 == 0 ? "/o/{distributor_id}/{task_instance_id}" : nil), s))
            }
            messages.append(message(CommandMessage.json("log_array_distributor_id", id: "d-missing", payload: [
                "array_id": 888_888, "distributor_ids": ["1": "x"]])))
            let outcome = try await processor.process(messages, logger: logger)
            #expect(outcome.commands.map(\.status.rawValue) == ["ok", "ok", "ok", "ok", "rejected"])
            for (operation, _) in singles { _ = try await db.perform(operation, logger: logger) }
            for (g, s) in pairs {
                let grouped = try await db.taskInstances(arrayID: g.arrayID)
                let single = try await db.taskInstances(arrayID: s.arrayID)
                #expect(grouped.map(\.distributorID) == single.map(\.distributorID))
                #expect(grouped.map { $0.stdout?.replacingOccurrences(of: "/\($0.id)", with: "/ID") }
                        == single.map { $0.stdout?.replacingOccurrences(of: "/\($0.id)", with: "/ID") })
            }
            #expect(try await db.taskInstances(arrayID: stranger.arrayID)[0].distributorID == nil)
            let results = try await outbox(db).filter { $0.topic == "arrayfsm.results" }.map { try json($0.value) }
            let first = results.first { $0["command_id"] as? String == "d-0" }!["result"] as! [String: Any]
            #expect(first["task_instances"] as? Int == 3)
            #expect((first["skipped_task_instance_ids"] as? [NSNumber])?.map(\.int64Value) == [strangerTI])
        }
    }

    @Test func envelopesThatCouldNotBeStoredAreDeadLetteredAndBadReplyTopicsRejected() async throws {
        try await TestPostgres.withDatabase { db in
            let processor = CommandBatchProcessor(database: db, maxMessageBytes: 2_000_000)
            let fixture = try await ArrayFixture.make(db, tasks: 1)
            let combining = "a" + String(repeating: "\u{301}", count: 200)
            let batch = [
                message(Array(#"{"command_id":"x\u0000","type":"add_array","payload":{}}"#.utf8), offset: 1),
                message(CommandMessage.json("add_array", id: combining, payload: [:]), offset: 2),
                message(Array("null".utf8), offset: 3),
                message(CommandMessage.json("get_array_max_concurrently_running", id: "bad-reply", payload: ["array_id": fixture.arrayID],
                                            replyTo: "no such topic"), offset: 4),
                message(CommandMessage.json("log_array_distributor_id", id: "padded-key", payload: [
                    "array_id": fixture.arrayID, "distributor_ids": ["05": "x"]]), offset: 5),
                message(Array(repeating: 0x41, count: 1_000_000), offset: 6),
            ]
            let outcome = try await processor.process(batch, logger: logger)
            #expect(outcome.commands.map(\.status.rawValue) == ["dead_letter", "dead_letter", "dead_letter", "rejected", "rejected", "dead_letter"])
            let messages = try await outbox(db)
            let dead = messages.filter { $0.topic == "arrayfsm.dlq" }
            #expect(dead.map { $0.headers[1] } == ["bad_envelope", "bad_envelope", "not_an_object", "not_json"])
            #expect(dead.last?.value.count == 64 * 1024)
            #expect(dead.last?.headers.suffix(2) == ["arrayfsm-original-bytes", "1000000"])
            let results = try messages.filter { $0.topic == "arrayfsm.results" }.map { try json($0.value) }
            #expect(results.map { ($0["error"] as? [String: Any])?["code"] as? String } == ["invalid_argument", "invalid_argument"])
            #expect(messages.allSatisfy { $0.topic != "no such topic" })
        }
    }

    @Test func aLateLaunchAfterAFailedSubmissionMovesNothing() async throws {
        try await TestPostgres.withDatabase { db in
            let fixture = try await ArrayFixture.make(db, tasks: 3)
            _ = try await fixture.queueAll(db)
            _ = try await db.perform(InstantiateArrayBatch(arrayID: fixture.arrayID, batchNumber: 1), logger: logger)
            _ = try await db.perform(LogArraySubmitFailed(arrayID: fixture.arrayID, batchNumber: 1), logger: logger)
            let late = try await db.perform(
                TransitionArrayToLaunched(arrayID: fixture.arrayID, batchNumber: 1, nextReportIncrement: 1), logger: logger)
            #expect(late.taskIDs.isEmpty && late.taskInstanceIDs.isEmpty)
            #expect(try await db.taskCounts(arrayID: fixture.arrayID) == ["I": 3])
            let processor = CommandBatchProcessor(database: db)
            _ = try await processor.process([message(CommandMessage.json("transition_array_to_launched", id: "late", payload: [
                "array_id": fixture.arrayID, "batch_number": 1, "next_report_increment": 1]))], logger: logger)
            #expect(try await db.taskCounts(arrayID: fixture.arrayID) == ["I": 3], "grouped path too")
        }
    }

    @Test func deletingPublishedRowsLeavesTheSessionDurable() async throws {
        try await TestPostgres.withDatabase { db in
            let processor = CommandBatchProcessor(database: db)
            _ = try await processor.process((0..<3).map { n in
                message(CommandMessage.json("get_array_max_concurrently_running", id: "del-\(n)", payload: ["array_id": 424_242]))
            }, logger: logger)
            try await db.client.withConnection { connection in
                // (The test server itself runs without synchronous commit.)
                try await connection.query("SET synchronous_commit = on", logger: logger)
                let rows = try await Outbox.oldest(100, on: connection, logger: logger)
                #expect(rows.count == 3)
                try await Outbox.delete(rows.dropLast().map(\.id), on: connection, logger: logger)
                #expect(try await Outbox.oldest(100, on: connection, logger: logger).map(\.id) == [rows.last!.id])
                // The delete's own transaction skipped the flush; the session still waits for it.
                for try await setting in try await connection.query("SHOW synchronous_commit", logger: logger).decode(String.self) {
                    #expect(setting == "on")
                }
                try await connection.query("RESET synchronous_commit", logger: logger)
            }
        }
    }
}
