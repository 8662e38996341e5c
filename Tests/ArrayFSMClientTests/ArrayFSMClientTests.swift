import ArrayFSM
import ArrayFSMClient
import ArrayFSMTesting
import ArrayFSMTools
import Foundation
import Kafka
import Testing

/// The Swift client against a real serve: real PostgreSQL, a real Kafka-protocol broker
/// (librdkafka's mock cluster), the server in this process.
@Suite(.serialized) struct ArrayFSMClientTests {
    func configuration(_ harness: ServiceHarness, attemptTimeout: Duration = .seconds(5), deadline: Duration = .seconds(60))
        -> ArrayFSMClient.Configuration
    {
        var configuration = ArrayFSMClient.Configuration(bootstrapServers: harness.bootstrapServers)
        configuration.commandsTopic = harness.topics.commands
        configuration.attemptTimeout = attemptTimeout
        configuration.deadline = deadline
        return configuration
    }

    @Test func everyCommandTypeIsAnsweredWithItsTypedResult() async throws {
        try await TestPostgres.withDatabase { db in
            let harness = try ServiceHarness(database: db)
            try harness.startServer()
            let workflowID = Int64.random(in: 1...1_000_000_000)
            try await ArrayFSMClient.withClient(configuration: configuration(harness)) { client in
                let added = try await client.addArray(workflowID: workflowID, taskTemplateVersionID: 7, name: "swift", maxConcurrentlyRunning: 50)
                #expect(added.created)
                let again = try await client.addArray(workflowID: workflowID, taskTemplateVersionID: 7, name: "swift", maxConcurrentlyRunning: 50)
                #expect(again.arrayID == added.arrayID && !again.created)
                #expect(try await client.getArrayMaxConcurrentlyRunning(arrayID: added.arrayID).maxConcurrentlyRunning == 50)
                #expect(try await client.getArrayMaxConcurrentlyRunning(workflowID: workflowID, taskTemplateVersionID: 7).arrayID == added.arrayID)

                let array = try await ArrayFixture.make(db, tasks: 6)
                let recorded = try await client.recordArrayBatchNum(arrayID: array.arrayID, taskIDs: Array(array.taskIDs[0..<4]),
                                                                    taskResourcesID: 1, workflowRunID: 1)
                #expect(recorded.batches.map(\.batchNumber) == [1])
                #expect(recorded.tasksByStatus == ["Q": Array(array.taskIDs[0..<4])])
                let second = try await client.recordArrayBatchNum(arrayID: array.arrayID, taskIDs: Array(array.taskIDs[4...]),
                                                                  taskResourcesID: 1, workflowRunID: 1)
                let instantiatedBatch = try await client.instantiateArrayBatch(arrayID: array.arrayID, batchNumber: 1)
                #expect(instantiatedBatch.taskInstances == 4 && instantiatedBatch.tasks == 4)
                let instantiated = try await client.instantiateTaskInstances(taskInstanceIDs: second.batches[0].taskInstanceIDs)
                #expect(instantiated.taskInstanceBatches.map(\.arrayBatchNumber) == [2])
                #expect(instantiated.taskInstanceBatches.first?.taskInstanceIDs == second.batches[0].taskInstanceIDs)
                #expect(try await client.transitionArrayToLaunched(arrayID: array.arrayID, batchNumber: 1, nextReportIncrement: 279).taskInstances == 4)
                let logged = try await client.logArrayDistributorID(arrayID: array.arrayID, batchNumber: 1,
                                                                    distributorIDsByStep: [0: "77_1", 1: "77_2", 2: "77_3", 3: "77_4"])
                #expect(logged.taskInstances == 4 && logged.skippedTaskInstanceIDs.isEmpty)
                #expect(try await client.logArraySubmitFailed(arrayID: array.arrayID, batchNumber: 2).taskInstances == 2)
                try await db.setTaskInstanceStatus(recorded.batches[0].taskInstanceIDs, to: .killSelf)
                #expect(try await client.transitionToKilled(arrayID: array.arrayID, batchNumber: 1).taskInstances == 4)
                let rows = try await db.taskInstances(arrayID: array.arrayID)
                #expect(rows.map(\.status) == ["F", "F", "F", "F", "W", "W"])
                #expect(rows.prefix(4).map(\.distributorID) == ["77_1", "77_2", "77_3", "77_4"])
            }
            try await harness.shutdown()
        }
    }

    @Test func aRefusalThrowsCommandRejectedWithTheContractsCode() async throws {
        try await TestPostgres.withDatabase { db in
            let harness = try ServiceHarness(database: db)
            try harness.startServer()
            let array = try await ArrayFixture.make(db, tasks: 2)
            try await ArrayFSMClient.withClient(configuration: configuration(harness)) { client in
                let refusal = await #expect(throws: CommandRejected.self) {
                    try await client.transitionArrayToLaunched(arrayID: array.arrayID, batchNumber: 9, nextReportIncrement: 279)
                }
                #expect(refusal?.code == "batch_not_found")
                #expect(refusal?.type == "transition_array_to_launched")
                let answer = try await client.send(.getArrayMaxConcurrentlyRunning(arrayID: Int64.max - 1))
                #expect(!answer.isOK && answer.rejection?.code == "not_found" && answer.attempts == 1)
            }
            try await harness.shutdown()
        }
    }

    @Test func aSplitResultIsPutBackTogether() async throws {
        try await TestPostgres.withDatabase { db in
            let harness = try ServiceHarness(database: db)
            try harness.startServer()
            let array = try await ArrayFixture.make(db, tasks: 30_000)
            try await ArrayFSMClient.withClient(configuration: configuration(harness)) { client in
                let answer = try await client.send(.recordArrayBatchNum(arrayID: array.arrayID, taskIDs: array.taskIDs, taskResourcesID: 1, workflowRunID: 1))
                #expect(answer.events.count > 1, "the result came in parts")
                let result = try answer.result(as: RecordArrayBatchNumResult.self)
                #expect(result.batches.flatMap(\.taskInstanceIDs) == (try await db.taskInstances(arrayID: array.arrayID)).map(\.id))
                #expect(Set(result.batches.map(\.batchNumber)).count == result.batches.count, "a batch split over parts is one batch again")
                #expect(result.tasksByStatus["Q"] == array.taskIDs)
            }
            try await harness.shutdown()
        }
    }

    @Test func aCommandNotAnsweredInTimeIsSentAgainAndAppliedOnce() async throws {
        try await TestPostgres.withDatabase { db in
            let harness = try ServiceHarness(database: db)
            let array = try await ArrayFixture.make(db, tasks: 5)
            try await ArrayFSMClient.withClient(configuration: configuration(harness, attemptTimeout: .milliseconds(700))) { client in
                // No serve yet: the first attempts go unanswered.
                let pending = try await client.submit(.recordArrayBatchNum(arrayID: array.arrayID, taskIDs: array.taskIDs, taskResourcesID: 1, workflowRunID: 1))
                try await Task.sleep(for: .seconds(2))
                try harness.startServer()
                let answer = try await pending.answer()
                #expect(answer.attempts >= 3)
                #expect(try answer.result(as: RecordArrayBatchNumResult.self).batches.map(\.batchNumber) == [1])
            }
            let results = try await harness.read(harness.topics.results, timeout: .seconds(10)) { $0.count >= 3 }
            #expect(results.count >= 3, "every attempt answered")
            #expect(Set(results.map(\.value)).count == 1, "with the same event")
            #expect(try await db.taskInstances(arrayID: array.arrayID).count == 5, "applied once")
            #expect(try await db.tasks(arrayID: array.arrayID).allSatisfy { $0.numAttempts == 1 })
            try await harness.shutdown()
        }
    }

    @Test func aCallGivesUpAtItsDeadline() async throws {
        try await TestPostgres.withDatabase { db in
            let harness = try ServiceHarness(database: db)
            try await ArrayFSMClient.withClient(configuration: configuration(harness, attemptTimeout: .milliseconds(400), deadline: .milliseconds(1500))) { client in
                let started = ContinuousClock.now
                let timeout = await #expect(throws: CommandTimeout.self) {
                    try await client.getArrayMaxConcurrentlyRunning(arrayID: 1, id: "never-answered")
                }
                #expect(timeout?.commandID == "never-answered")
                // Re-sent before it gave up (up to 4 attempts fit in 1.5 s; a loaded machine runs fewer).
                #expect((timeout?.attempts ?? 0) >= 2)
                #expect(ContinuousClock.now - started < .seconds(5))
            }
            try await harness.shutdown()
        }
    }

    @Test func twoClientsEachReadOnlyTheirOwnAnswersAndPipelinedCommandsKeepTheirOrder() async throws {
        try await TestPostgres.withDatabase { db in
            let harness = try ServiceHarness(database: db)
            try harness.startServer()
            var arrays: [ArrayFixture] = []
            for _ in 0..<4 { arrays.append(try await ArrayFixture.make(db, tasks: 20)) }
            let fixtures = arrays
            let replyTopics = try await withThrowingTaskGroup(of: (String, [String]).self) { group in
                for (index, pair) in [Array(fixtures[0..<2]), Array(fixtures[2..<4])].enumerated() {
                    group.addTask {
                        try await ArrayFSMClient.withClient(configuration: configuration(harness)) { client in
                            // Record, instantiate, launch for every batch of 5, all submitted at once:
                            // one array's commands are applied in the order submitted.
                            var commands: [ArrayCommand] = []
                            for array in pair {
                                for (batch, chunk) in stride(from: 0, to: 20, by: 5).map({ Array(array.taskIDs[$0..<$0 + 5]) }).enumerated() {
                                    commands += [
                                        .recordArrayBatchNum(arrayID: array.arrayID, taskIDs: chunk, taskResourcesID: 1, workflowRunID: 1, id: "c\(index)-\(array.arrayID)-r\(batch)"),
                                        .instantiateArrayBatch(arrayID: array.arrayID, batchNumber: Int32(batch + 1), id: "c\(index)-\(array.arrayID)-i\(batch)"),
                                        .transitionArrayToLaunched(arrayID: array.arrayID, batchNumber: Int32(batch + 1), nextReportIncrement: 60,
                                                                   id: "c\(index)-\(array.arrayID)-l\(batch)"),
                                    ]
                                }
                            }
                            let answers = try await client.submit(commands)
                            for pending in answers { #expect(try await pending.answer().isOK, "\(pending.commandID)") }
                            return (client.configuration.replyTopic, commands.map(\.id))
                        }
                    }
                }
                var topics: [(String, [String])] = []
                for try await topic in group { topics.append(topic) }
                return topics
            }
            for array in fixtures { #expect(try await db.taskInstanceCounts(arrayID: array.arrayID) == ["O": 20]) }
            for (topic, ids) in replyTopics {
                let records = try await harness.read(topic, timeout: .seconds(10)) { $0.count >= ids.count }
                #expect(records.compactMap { $0.json["command_id"] as? String }.sorted() == ids.sorted())
            }
            try await harness.shutdown()
        }
    }

    @Test func aCommandTheBrokerRefusesIsSettledWithItsErrorAndTheRestGoOut() async throws {
        try await TestPostgres.withDatabase { db in
            let harness = try ServiceHarness(database: db)
            try harness.startServer()
            let array = try await ArrayFixture.make(db, tasks: 3)
            try await ArrayFSMClient.withClient(configuration: configuration(harness)) { client in
                // ~2.4 MB of ids: over the producer's 1 MB message.max.bytes.
                let tooLarge = ArrayCommand.recordArrayBatchNum(arrayID: array.arrayID, taskIDs: Array(1_000_000_000...1_000_200_000),
                                                                taskResourcesID: 1, workflowRunID: 1)
                let pending = try await client.submit(
                    [tooLarge, .recordArrayBatchNum(arrayID: array.arrayID, taskIDs: array.taskIDs, taskResourcesID: 1, workflowRunID: 1)],
                    acknowledged: true)
                #expect(throws: KafkaError.self) { try pending[0].outcome?.get() }
                #expect(try await pending[1].answer().result(as: RecordArrayBatchNumResult.self).batches.count == 1)
            }
            #expect(try await db.taskInstanceCounts(arrayID: array.arrayID) == ["Q": 3])
            try await harness.shutdown()
        }
    }
}
