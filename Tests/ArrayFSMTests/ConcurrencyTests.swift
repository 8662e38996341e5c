import ArrayFSM
import ArrayFSMTesting
import ArrayFSMTools
import Testing

@Suite struct ConcurrencyTests {
    let logger = TestPostgres.logger

    @Test func sameBatchRecordedTwiceAtOnceCreatesOneInstancePerTask() async throws {
        try await TestPostgres.withDatabase(maxConnections: 4) { db in
            for _ in 0..<10 {
                let fixture = try await ArrayFixture.make(db, tasks: 300)
                let outputs = try await withThrowingTaskGroup(of: RecordArrayBatchNum.Output.self) { group in
                    for _ in 0..<2 {
                        group.addTask {
                            try await db.perform(
                                RecordArrayBatchNum(arrayID: fixture.arrayID, taskIDs: fixture.taskIDs, taskResourcesID: 1, workflowRunID: 1),
                                logger: logger)
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                let instances = try await db.taskInstances(arrayID: fixture.arrayID)
                #expect(instances.count == 300)
                #expect(Set(instances.map(\.taskID)).count == 300)
                #expect(outputs.map(\.batches.count).sorted() == [0, 1], "one call queued everything, the other nothing")
                #expect(outputs.allSatisfy { $0.tasksByStatus == ["Q": fixture.taskIDs] })
                #expect(try await db.tasks(arrayID: fixture.arrayID).allSatisfy { $0.numAttempts == 1 })
            }
        }
    }

    @Test func launchAndKillOfDifferentBatchesInterleavedNeverFail() async throws {
        try await TestPostgres.withDatabase(maxConnections: 4) { db in
            let fixture = try await ArrayFixture.make(db, tasks: 200 * 20)
            let queued = try await fixture.queueAll(db, chunkSize: 20)
            #expect(queued.batches.count == 200)
            for batch in queued.batches {
                _ = try await db.perform(InstantiateArrayBatch(arrayID: fixture.arrayID, batchNumber: batch.batchNumber), logger: logger)
            }
            // Odd batches: launched then told to kill themselves, ready for transition_to_killed.
            let killBatches = queued.batches.enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
            for batch in killBatches {
                _ = try await db.perform(
                    TransitionArrayToLaunched(arrayID: fixture.arrayID, batchNumber: batch.batchNumber, nextReportIncrement: 1), logger: logger)
                try await db.setTaskInstanceStatus(batch.taskInstanceIDs, to: .killSelf)
            }
            let launchBatches = queued.batches.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
            #expect(launchBatches.count == 100 && killBatches.count == 100)

            try await withThrowingTaskGroup(of: Void.self) { group in
                for (launch, kill) in zip(launchBatches, killBatches) {
                    group.addTask {
                        let out = try await db.perform(
                            TransitionArrayToLaunched(arrayID: fixture.arrayID, batchNumber: launch.batchNumber, nextReportIncrement: 5),
                            logger: logger)
                        #expect(out.taskInstanceIDs.count == 20)
                    }
                    group.addTask {
                        let out = try await db.perform(TransitionToKilled(arrayID: fixture.arrayID, batchNumber: kill.batchNumber), logger: logger)
                        #expect(out.taskInstanceIDs.count == 20)
                        #expect(out.taskIDs.count == 20)
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await db.taskInstanceCounts(arrayID: fixture.arrayID) == ["O": 2000, "F": 2000])
            #expect(try await db.taskCounts(arrayID: fixture.arrayID) == ["O": 2000, "F": 2000])
        }
    }
}
