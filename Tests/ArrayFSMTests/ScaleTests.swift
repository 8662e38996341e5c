import ArrayFSM
import ArrayFSMTesting
import ArrayFSMTools
import Testing

@Suite struct ScaleTests {
    let logger = TestPostgres.logger

    @Test(.timeLimit(.minutes(1)))
    func hundredThousandTasksGoFromRegisteringToLaunchedWithDistributorIDs() async throws {
        try await TestPostgres.withDatabase { db in
            let fixture = try await ArrayFixture.make(db, tasks: 100_000)
            let queued = try await fixture.queueAll(db)
            #expect(queued.batches.count == 100)
            #expect(queued.tasksByStatus["Q"]?.count == 100_000)
            for batch in queued.batches {
                let number = batch.batchNumber
                let instantiated = try await db.perform(InstantiateArrayBatch(arrayID: fixture.arrayID, batchNumber: number), logger: logger)
                #expect(instantiated.taskInstanceIDs.count == 1000)
                let launched = try await db.perform(
                    TransitionArrayToLaunched(arrayID: fixture.arrayID, batchNumber: number, nextReportIncrement: 279), logger: logger)
                #expect(launched.taskInstanceIDs.count == 1000)
                var map: [Int64: String] = [:]
                for (step, id) in batch.taskInstanceIDs.enumerated() { map[id] = "\(90_000 + Int(number))_\(step)" }
                let logged = try await db.perform(LogArrayDistributorID(arrayID: fixture.arrayID, distributorIDs: map), logger: logger)
                #expect(logged.taskInstanceIDs.count == 1000)
            }
            #expect(try await db.taskCounts(arrayID: fixture.arrayID) == ["O": 100_000])
            #expect(try await db.taskInstanceCounts(arrayID: fixture.arrayID) == ["O": 100_000])
            let missing = try await db.client.query(
                "SELECT count(*) FROM task_instance WHERE array_id = \(fixture.arrayID) AND distributor_id IS NULL")
            for try await n in missing.decode(Int64.self) { #expect(n == 0) }
        }
    }
}
