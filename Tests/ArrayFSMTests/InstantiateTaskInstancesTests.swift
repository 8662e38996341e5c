import ArrayFSM
import ArrayFSMTesting
import ArrayFSMTools
import Testing

@Suite struct InstantiateTaskInstancesTests {
    let logger = TestPostgres.logger

    /// Two arrays, each queued in batches of `chunk`: their fixtures and queued instances.
    func queuedArrays(_ db: ArrayDatabase, tasks: Int = 6, chunk: Int32 = 3) async throws -> [(ArrayFixture, [TaskInstanceRow])] {
        var arrays: [(ArrayFixture, [TaskInstanceRow])] = []
        for _ in 0..<2 {
            let fixture = try await ArrayFixture.make(db, tasks: tasks)
            _ = try await fixture.queueAll(db, chunkSize: chunk)
            arrays.append((fixture, try await db.taskInstances(arrayID: fixture.arrayID)))
        }
        return arrays
    }

    @Test func movesTasksAndInstancesOfSeveralArraysAndAnswersJobmonsBatches() async throws {
        try await TestPostgres.withDatabase { db in
            let arrays = try await queuedArrays(db)
            let (a, aInstances) = arrays[0]
            let (b, bInstances) = arrays[1]
            // Batch 1 of a whole, one instance of batch 2 of a, and batch 2 of b; plus an id of no instance.
            let listed = aInstances.filter { $0.batchNumber == 1 }.map(\.id) + [aInstances.first { $0.batchNumber == 2 }!.id]
                + bInstances.filter { $0.batchNumber == 2 }.map(\.id) + [9_000_000_000]
            let out = try await db.perform(InstantiateTaskInstances(taskInstanceIDs: listed), logger: logger)
            #expect(out.batches.map { [$0.arrayID, Int64($0.batchNumber), Int64($0.taskInstanceIDs.count)] } == [
                [a.arrayID, 1, 3], [a.arrayID, 2, 1], [b.arrayID, 2, 3],
            ])
            #expect(out.batches.allSatisfy { $0.taskResourcesID == 1 && $0.arrayName.hasPrefix("fixture-") })
            #expect(try await db.taskInstanceCounts(arrayID: a.arrayID) == ["I": 4, "Q": 2])
            #expect(try await db.taskCounts(arrayID: a.arrayID) == ["I": 4, "Q": 2])
            #expect(try await db.taskInstanceCounts(arrayID: b.arrayID) == ["I": 3, "Q": 3])
            #expect(Set(out.transitions.map { "\($0.arrayID)/\($0.batchNumber!) \($0.entity.rawValue) \($0.from!)→\($0.to) \($0.ids.count)" }) == [
                "\(a.arrayID)/1 task Q→I 3", "\(a.arrayID)/1 task_instance Q→I 3",
                "\(a.arrayID)/2 task Q→I 1", "\(a.arrayID)/2 task_instance Q→I 1",
                "\(b.arrayID)/2 task Q→I 3", "\(b.arrayID)/2 task_instance Q→I 3",
            ])

            // A repeat moves nothing and answers the same batches, as Jobmon's route does.
            let again = try await db.perform(InstantiateTaskInstances(taskInstanceIDs: listed), logger: logger)
            #expect(again.batches == out.batches)
            #expect(again.transitions.isEmpty)
        }
    }

    @Test func onlyQueuedInstancesMoveAndOthersAreNotAnswered() async throws {
        try await TestPostgres.withDatabase { db in
            let (fixture, instances) = try await queuedArrays(db)[0]
            let batch = instances.filter { $0.batchNumber == 1 }
            // The resume path told one to kill itself before the distributor got to it.
            try await db.setTaskInstanceStatus([batch[0].id], to: .killSelf)
            let out = try await db.perform(InstantiateTaskInstances(taskInstanceIDs: batch.map(\.id)), logger: logger)
            #expect(out.batches.map(\.taskInstanceIDs) == [batch.dropFirst().map(\.id).sorted()])
            let rows = try await db.taskInstances(arrayID: fixture.arrayID)
            #expect(rows.first { $0.id == batch[0].id }?.status == "K")
            // Its task moved with the others (Jobmon's rule: the tasks of the listed instances in Q).
            #expect(try await db.taskCounts(arrayID: fixture.arrayID) == ["I": 3, "Q": 3])
        }
    }

    @Test func emptyListAnswersNoBatchesAndBadIDsAreRefused() async throws {
        try await TestPostgres.withDatabase { db in
            let out = try await db.perform(InstantiateTaskInstances(taskInstanceIDs: []), logger: logger)
            #expect(out.batches.isEmpty && out.transitions.isEmpty)
            #expect(throws: OperationError.self) { try InstantiateTaskInstances(taskInstanceIDs: [3, 0]).validate() }
        }
    }

    @Test func groupedCommandsAnswerWhatEachWouldAlone() async throws {
        try await TestPostgres.withDatabase { db in
            let arrays = try await queuedArrays(db)
            let a = arrays[0].1, b = arrays[1].1
            let commands = [
                InstantiateTaskInstances(taskInstanceIDs: a.filter { $0.batchNumber == 1 }.map(\.id)),
                InstantiateTaskInstances(taskInstanceIDs: b.map(\.id)),
                InstantiateTaskInstances(taskInstanceIDs: a.filter { $0.batchNumber == 2 }.map(\.id)),
            ]
            let grouped = try await db.transaction(logger: logger) { connection in
                try await InstantiateTaskInstances.applyGrouped(commands, on: connection, logger: logger).map { try $0.get() }
            }
            #expect(grouped.map { $0.batches.map(\.taskInstanceIDs) } == [
                [a.filter { $0.batchNumber == 1 }.map(\.id).sorted()],
                [b.filter { $0.batchNumber == 1 }.map(\.id).sorted(), b.filter { $0.batchNumber == 2 }.map(\.id).sorted()],
                [a.filter { $0.batchNumber == 2 }.map(\.id).sorted()],
            ])
            #expect(grouped.map { $0.transitions.reduce(0) { $0 + $1.ids.count } } == [6, 12, 6])
            #expect(try await db.taskInstanceCounts(arrayID: arrays[0].0.arrayID) == ["I": 6])
        }
    }
}
