import ArrayFSM
import ArrayFSMTesting
import ArrayFSMTools
import Foundation
import Testing

@Suite struct BatchTransitionTests {
    let logger = TestPostgres.logger

    /// An array of `tasks` tasks queued in batches of `chunk` and instantiated: tasks and TIs in I.
    func instantiated(_ db: ArrayDatabase, tasks: Int, chunk: Int32 = 1000) async throws -> (ArrayFixture, RecordArrayBatchNum.Output) {
        let fixture = try await ArrayFixture.make(db, tasks: tasks)
        let queued = try await fixture.queueAll(db, chunkSize: chunk)
        for batch in queued.batches {
            let out = try await db.perform(InstantiateArrayBatch(arrayID: fixture.arrayID, batchNumber: batch.batchNumber), logger: logger)
            #expect(out.taskInstanceIDs == batch.taskInstanceIDs.sorted())
        }
        return (fixture, queued)
    }

    @Test func instantiateMovesQueuedTasksAndInstancesAndRepeatIsANoOp() async throws {
        try await TestPostgres.withDatabase { db in
            let fixture = try await ArrayFixture.make(db, tasks: 5)
            let queued = try await fixture.queueAll(db)
            let out = try await db.perform(InstantiateArrayBatch(arrayID: fixture.arrayID, batchNumber: 1), logger: logger)
            #expect(out.taskIDs == fixture.taskIDs)
            #expect(out.taskInstanceIDs == queued.batches[0].taskInstanceIDs.sorted())
            #expect(try await db.taskCounts(arrayID: fixture.arrayID) == ["I": 5])
            #expect(try await db.taskInstanceCounts(arrayID: fixture.arrayID) == ["I": 5])
            let again = try await db.perform(InstantiateArrayBatch(arrayID: fixture.arrayID, batchNumber: 1), logger: logger)
            #expect(again.taskIDs.isEmpty && again.taskInstanceIDs.isEmpty && again.transitions.isEmpty)
        }
    }

    @Test func launchedMovesOnlyInstantiatedAndSetsReportByDate() async throws {
        try await TestPostgres.withDatabase { db in
            let (fixture, queued) = try await instantiated(db, tasks: 4)
            let tis = queued.batches[0].taskInstanceIDs
            // One instance already failed to submit: it must stay W, and its task stays I.
            try await db.setTaskInstanceStatus([tis[3]], to: .noDistributorID)
            try await db.setTaskStatus([fixture.taskIDs[3]], to: .errorRecoverable)

            let out = try await db.perform(
                TransitionArrayToLaunched(arrayID: fixture.arrayID, batchNumber: 1, nextReportIncrement: 279), logger: logger)
            #expect(out.taskInstanceIDs == Array(tis[0..<3]).sorted())
            #expect(out.taskIDs == Array(fixture.taskIDs[0..<3]))
            #expect(
                Set(out.transitions) == [
                    TransitionGroup(entity: .task, from: "I", to: "O", arrayID: fixture.arrayID, batchNumber: 1, ids: out.taskIDs),
                    TransitionGroup(entity: .taskInstance, from: "I", to: "O", arrayID: fixture.arrayID, batchNumber: 1,
                                    ids: out.taskInstanceIDs),
                ])
            for transition in out.transitions {
                if transition.entity == .task {
                    #expect(StateMachine.isLegal(Transition(from: TaskStatus(rawValue: transition.from!)!, to: TaskStatus(rawValue: transition.to)!)))
                } else {
                    #expect(StateMachine.isLegal(
                        Transition(from: TaskInstanceStatus(rawValue: transition.from!)!, to: TaskInstanceStatus(rawValue: transition.to)!)))
                }
            }

            let instances = try await db.taskInstances(arrayID: fixture.arrayID)
            let tasks = try await db.tasks(arrayID: fixture.arrayID)
            #expect(instances.map(\.status) == ["O", "O", "O", "W"])
            #expect(tasks.map(\.status) == ["O", "O", "O", "E"])
            for (instance, task) in zip(instances.prefix(3), tasks) {
                let increment = instance.reportByDate!.timeIntervalSince(instance.statusDate)
                #expect(abs(increment - 279) < 0.001, "report_by_date − status_date is exactly the increment")
                #expect(instance.submittedDate == instance.statusDate)
                #expect(task.statusDate == instance.statusDate, "one transaction clock")
            }

            let repeated = try await db.perform(
                TransitionArrayToLaunched(arrayID: fixture.arrayID, batchNumber: 1, nextReportIncrement: 279), logger: logger)
            #expect(repeated.taskInstanceIDs.isEmpty && repeated.taskIDs.isEmpty)
            #expect(try await db.taskInstances(arrayID: fixture.arrayID) == instances, "a repeat changes nothing")
        }
    }

    @Test func launchedTouchesOnlyItsBatch() async throws {
        try await TestPostgres.withDatabase { db in
            let (fixture, _) = try await instantiated(db, tasks: 5, chunk: 2)
            let out = try await db.perform(
                TransitionArrayToLaunched(arrayID: fixture.arrayID, batchNumber: 2, nextReportIncrement: 0), logger: logger)
            #expect(out.taskInstanceIDs.count == 2)
            let instances = try await db.taskInstances(arrayID: fixture.arrayID)
            #expect(instances.map(\.status) == ["I", "I", "O", "O", "I"])
        }
    }

    @Test func unknownBatchOrArrayIsRefusedAndChangesNothing() async throws {
        try await TestPostgres.withDatabase { db in
            let (fixture, _) = try await instantiated(db, tasks: 2)
            let batch = await #expect(throws: OperationError.self) {
                try await db.perform(TransitionArrayToLaunched(arrayID: fixture.arrayID, batchNumber: 2, nextReportIncrement: 1), logger: logger)
            }
            #expect(batch?.code == .batchNotFound)
            let kill = await #expect(throws: OperationError.self) {
                try await db.perform(TransitionToKilled(arrayID: fixture.arrayID, batchNumber: 7), logger: logger)
            }
            #expect(kill?.code == .batchNotFound)
            let array = await #expect(throws: OperationError.self) {
                try await db.perform(TransitionArrayToLaunched(arrayID: 424242, batchNumber: 1, nextReportIncrement: 1), logger: logger)
            }
            #expect(array?.code == .arrayNotFound)
            #expect(try await db.taskInstanceCounts(arrayID: fixture.arrayID) == ["I": 2])
        }
    }

    @Test(arguments: [-1.0, .nan, .infinity, -.infinity, 400 * 24 * 3600.0])
    func launchRejectsBadReportIncrements(_ increment: Double) throws {
        let error = #expect(throws: OperationError.self) {
            try TransitionArrayToLaunched(arrayID: 1, batchNumber: 1, nextReportIncrement: increment).validate()
        }
        #expect(error?.code == .invalidArgument)
    }

    @Test func batchNumbersBelowOneAreRejected() throws {
        for operation in [
            TransitionToKilled(arrayID: 1, batchNumber: 0).validate,
            InstantiateArrayBatch(arrayID: 1, batchNumber: -1).validate,
            LogArraySubmitFailed(arrayID: 1, batchNumber: Int32.min).validate,
        ] {
            #expect(throws: OperationError.self) { try operation() }
        }
    }

    @Test func killedMovesKillSelfToFatalAndOnlyLaunchedOrRunningTasks() async throws {
        try await TestPostgres.withDatabase { db in
            let (fixture, queued) = try await instantiated(db, tasks: 6)
            _ = try await db.perform(
                TransitionArrayToLaunched(arrayID: fixture.arrayID, batchNumber: 1, nextReportIncrement: 10), logger: logger)
            let tis = queued.batches[0].taskInstanceIDs
            let ids = fixture.taskIDs
            // The resume path: instances 0–3 told to kill themselves; tasks in O, R, D, E, and two untouched.
            try await db.setTaskInstanceStatus(Array(tis[0...3]), to: .killSelf)
            try await db.setTaskStatus([ids[1]], to: .running)
            try await db.setTaskStatus([ids[2]], to: .done)
            try await db.setTaskStatus([ids[3]], to: .errorRecoverable)

            let out = try await db.perform(TransitionToKilled(arrayID: fixture.arrayID, batchNumber: 1), logger: logger)
            #expect(out.taskInstanceIDs == Array(tis[0...3]).sorted())
            #expect(out.taskIDs == [ids[0], ids[1]])
            #expect(
                Set(out.transitions) == [
                    TransitionGroup(entity: .task, from: "O", to: "F", arrayID: fixture.arrayID, batchNumber: 1, ids: [ids[0]]),
                    TransitionGroup(entity: .task, from: "R", to: "F", arrayID: fixture.arrayID, batchNumber: 1, ids: [ids[1]]),
                    TransitionGroup(entity: .taskInstance, from: "K", to: "F", arrayID: fixture.arrayID, batchNumber: 1,
                                    ids: out.taskInstanceIDs),
                ])
            #expect(try await db.tasks(arrayID: fixture.arrayID).map(\.status) == ["F", "F", "D", "E", "O", "O"])
            #expect(try await db.taskInstances(arrayID: fixture.arrayID).map(\.status) == ["F", "F", "F", "F", "O", "O"])

            let again = try await db.perform(TransitionToKilled(arrayID: fixture.arrayID, batchNumber: 1), logger: logger)
            #expect(again.taskIDs.isEmpty && again.taskInstanceIDs.isEmpty, "no K instances left: nothing happens")
        }
    }

    @Test func submitFailedMovesInstantiatedToNoDistributorID() async throws {
        try await TestPostgres.withDatabase { db in
            let (fixture, _) = try await instantiated(db, tasks: 3)
            let out = try await db.perform(LogArraySubmitFailed(arrayID: fixture.arrayID, batchNumber: 1), logger: logger)
            #expect(out.taskInstanceIDs.count == 3)
            #expect(out.taskIDs.isEmpty)
            #expect(out.transitions.map(\.to) == ["W"])
            #expect(try await db.taskInstanceCounts(arrayID: fixture.arrayID) == ["W": 3])
            #expect(try await db.taskCounts(arrayID: fixture.arrayID) == ["I": 3], "tasks are left as they are")
        }
    }
    /// Applies each operation alone, in its own transaction: the reference a grouped application must equal.
    func oneByOne<Operation: ArrayOperation>(_ db: ArrayDatabase, _ operations: [Operation]) async throws
        -> [Result<BatchTransitionOutput, OperationError>] where Operation.Output == BatchTransitionOutput
    {
        var results: [Result<BatchTransitionOutput, OperationError>] = []
        for operation in operations {
            do { results.append(.success(try await db.perform(operation, logger: logger))) } catch let error as OperationError { results.append(.failure(error)) }
        }
        return results
    }

    /// A result as counts and transitions, comparable between twin arrays (whose ids differ).
    func shape(_ result: Result<BatchTransitionOutput, OperationError>) -> String {
        switch result {
        case .failure(let error): error.code.rawValue
        case .success(let out):
            "\(out.taskIDs.count)/\(out.taskInstanceIDs.count) "
                + out.transitions.map { "\($0.entity.rawValue) \($0.from ?? "-")→\($0.to) b\($0.batchNumber ?? 0) ×\($0.ids.count)" }.joined(separator: ", ")
        }
    }

    /// Twin arrays hold their tasks and instances in the same statuses, batches and steps.
    func expectSameRows(_ db: ArrayDatabase, _ together: [ArrayFixture], _ alone: [ArrayFixture]) async throws {
        for (g, a) in zip(together, alone) {
            #expect(try await db.tasks(arrayID: g.arrayID).map(\.status) == (try await db.tasks(arrayID: a.arrayID).map(\.status)))
            #expect(try await db.taskInstances(arrayID: g.arrayID).map { "\($0.batchNumber).\($0.stepID) \($0.status)" }
                    == (try await db.taskInstances(arrayID: a.arrayID).map { "\($0.batchNumber).\($0.stepID) \($0.status)" }))
        }
    }

    @Test func instantiatingManyArraysTogetherMatchesInstantiatingEachAlone() async throws {
        try await TestPostgres.withDatabase { db in
            // Twin sets of arrays queued in batches of 2: batch 1, batch 2, an already instantiated
            // batch (moves nothing), a batch never issued, and an unknown array.
            func prepare() async throws -> [ArrayFixture] {
                var arrays: [ArrayFixture] = []
                for n in 0..<4 {
                    let fixture = try await ArrayFixture.make(db, tasks: 5)
                    _ = try await fixture.queueAll(db, chunkSize: 2)
                    if n == 2 { _ = try await db.perform(InstantiateArrayBatch(arrayID: fixture.arrayID, batchNumber: 1), logger: logger) }
                    arrays.append(fixture)
                }
                return arrays
            }
            func operations(_ arrays: [ArrayFixture]) -> [InstantiateArrayBatch] {
                zip(arrays, [1, 2, 1, 9] as [Int32]).map { InstantiateArrayBatch(arrayID: $0.arrayID, batchNumber: $1) }
                    + [InstantiateArrayBatch(arrayID: 999_999_999, batchNumber: 1)]
            }
            let together = try await prepare()
            let alone = try await prepare()
            let grouped = try await db.transaction(logger: logger) { connection in
                try await InstantiateArrayBatch.applyGrouped(operations(together), on: connection, logger: logger)
            }
            let one = try await oneByOne(db, operations(alone))
            #expect(grouped.map(shape) == one.map(shape))
            #expect(grouped.map(shape).map { $0.prefix(4) } == ["2/2 ", "2/2 ", "0/0 ", "batc", "not_"])
            try await expectSameRows(db, together, alone)
            // The moved ids are the array's own: batch 2 of array 1 is its tasks 2 and 3.
            let second = try grouped[1].get()
            #expect(second.taskIDs == Array(together[1].taskIDs[2..<4]))
        }
    }

    @Test func launchingManyArraysTogetherMatchesLaunchingEachAlone() async throws {
        try await TestPostgres.withDatabase { db in
            // Twin sets of three arrays with two instantiated batches of 2 each; the commands name
            // batches 1 and 2 (one statement each) and two increments (one statement each).
            func prepare() async throws -> [ArrayFixture] {
                var arrays: [ArrayFixture] = []
                for _ in 0..<3 { arrays.append(try await instantiated(db, tasks: 4, chunk: 2).0) }
                return arrays
            }
            func operations(_ arrays: [ArrayFixture]) -> [TransitionArrayToLaunched] {
                zip(arrays, [(1, 279), (2, 10), (1, 10)] as [(Int32, Double)]).map {
                    TransitionArrayToLaunched(arrayID: $0.arrayID, batchNumber: $1.0, nextReportIncrement: $1.1)
                } + [TransitionArrayToLaunched(arrayID: 999_999_999, batchNumber: 1, nextReportIncrement: 1)]
            }
            let together = try await prepare()
            let alone = try await prepare()
            let grouped = try await db.transaction(logger: logger) { connection in
                try await TransitionArrayToLaunched.applyGrouped(operations(together), on: connection, logger: logger)
            }
            let one = try await oneByOne(db, operations(alone))
            #expect(grouped.map(shape) == one.map(shape))
            #expect(grouped.map(shape).map { $0.prefix(4) } == ["2/2 ", "2/2 ", "2/2 ", "not_"])
            try await expectSameRows(db, together, alone)
            for g in together {
                // Each launched instance reports by its own command's increment.
                let instances = try await db.taskInstances(arrayID: g.arrayID)
                let increments = instances.compactMap { instance in instance.reportByDate.map { $0.timeIntervalSince(instance.statusDate).rounded() } }
                #expect(Set(increments) == [g.arrayID == together[0].arrayID ? 279 : 10])
            }
            // The moved ids are the arrays' own: batch 2 of the second array is its tasks 2 and 3.
            #expect(try grouped[1].get().taskIDs == Array(together[1].taskIDs[2..<4]))
            #expect(try grouped[2].get().taskIDs == Array(together[2].taskIDs[0..<2]))
        }
    }
}
