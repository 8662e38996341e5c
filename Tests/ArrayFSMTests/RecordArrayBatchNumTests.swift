import ArrayFSM
import ArrayFSMTesting
import ArrayFSMTools
import Testing

@Suite struct RecordArrayBatchNumTests {
    let logger = TestPostgres.logger

    @Test func queuesRegisteringAndAdjustingTasksWithOneInstanceEach() async throws {
        try await TestPostgres.withDatabase { db in
            let fixture = try await ArrayFixture.make(db, tasks: 6)
            let ids = fixture.taskIDs
            try await db.setTaskStatus([ids[1], ids[4]], to: .adjustingResources)
            let out = try await db.perform(
                RecordArrayBatchNum(arrayID: fixture.arrayID, taskIDs: ids.reversed(), taskResourcesID: 3, workflowRunID: 4),
                logger: logger)

            #expect(out.batches.count == 1)
            #expect(out.batches[0].batchNumber == 1)
            #expect(out.tasksByStatus == ["Q": ids])
            let tasks = try await db.tasks(arrayID: fixture.arrayID)
            #expect(tasks.allSatisfy { $0.status == "Q" && $0.numAttempts == 1 })

            let instances = try await db.taskInstances(arrayID: fixture.arrayID)
            #expect(instances.map(\.taskID) == ids, "step ids follow ascending task id")
            #expect(instances.map(\.stepID) == Array(0..<6))
            #expect(instances.allSatisfy { $0.status == "Q" && $0.batchNumber == 1 })
            #expect(out.batches[0].taskInstanceIDs == instances.map(\.id))

            #expect(
                Set(out.transitions) == [
                    TransitionGroup(entity: .task, from: "G", to: "Q", arrayID: fixture.arrayID, batchNumber: nil,
                                    ids: [ids[0], ids[2], ids[3], ids[5]]),
                    TransitionGroup(entity: .task, from: "A", to: "Q", arrayID: fixture.arrayID, batchNumber: nil, ids: [ids[1], ids[4]]),
                    TransitionGroup(entity: .taskInstance, from: nil, to: "Q", arrayID: fixture.arrayID, batchNumber: 1,
                                    ids: instances.map(\.id).sorted()),
                ])
        }
    }

    @Test func batchNumbersCountUpPerArray() async throws {
        try await TestPostgres.withDatabase { db in
            let a = try await ArrayFixture.make(db, tasks: 3)
            let b = try await ArrayFixture.make(db, tasks: 1)
            var numbers: [Int32] = []
            for id in a.taskIDs {
                let out = try await db.perform(
                    RecordArrayBatchNum(arrayID: a.arrayID, taskIDs: [id], taskResourcesID: 1, workflowRunID: 1), logger: logger)
                numbers += out.batches.map(\.batchNumber)
            }
            #expect(numbers == [1, 2, 3])
            let other = try await b.queueAll(db)
            #expect(other.batches.map(\.batchNumber) == [1], "each array has its own counter")
        }
    }

    @Test func alreadyQueuedTasksGetNoInstanceButAreReported() async throws {
        try await TestPostgres.withDatabase { db in
            let fixture = try await ArrayFixture.make(db, tasks: 4)
            let ids = fixture.taskIDs
            _ = try await db.perform(
                RecordArrayBatchNum(arrayID: fixture.arrayID, taskIDs: [ids[0], ids[1]], taskResourcesID: 1, workflowRunID: 1),
                logger: logger)
            try await db.setTaskStatus([ids[2]], to: .running)
            let out = try await db.perform(
                RecordArrayBatchNum(arrayID: fixture.arrayID, taskIDs: ids, taskResourcesID: 1, workflowRunID: 1), logger: logger)
            #expect(out.tasksByStatus == ["Q": [ids[0], ids[1], ids[3]], "R": [ids[2]]])
            #expect(out.batches.count == 1)
            #expect(out.batches[0].batchNumber == 2)
            #expect(out.batches[0].taskInstanceIDs.count == 1)
            let instances = try await db.taskInstances(arrayID: fixture.arrayID)
            #expect(instances.count == 3)
            #expect(instances.last?.taskID == ids[3])
            #expect(instances.last?.stepID == 0)
        }
    }

    @Test func nothingToQueueReportsStatusesAndOpensNoBatch() async throws {
        try await TestPostgres.withDatabase { db in
            let fixture = try await ArrayFixture.make(db, tasks: 2, status: .done)
            let out = try await db.perform(
                RecordArrayBatchNum(arrayID: fixture.arrayID, taskIDs: fixture.taskIDs, taskResourcesID: 1, workflowRunID: 1),
                logger: logger)
            #expect(out.batches.isEmpty)
            #expect(out.tasksByStatus == ["D": fixture.taskIDs])
            #expect(out.transitions.isEmpty)
            let next = try await ArrayFixture.make(db, tasks: 1)
            #expect(try await next.queueAll(db).batches.map(\.batchNumber) == [1])
        }
    }

    @Test func twentyFiveHundredIDsMakeThreeBatches() async throws {
        try await TestPostgres.withDatabase { db in
            let fixture = try await ArrayFixture.make(db, tasks: 2500)
            let out = try await fixture.queueAll(db)
            #expect(out.batches.map(\.batchNumber) == [1, 2, 3])
            #expect(out.batches.map(\.taskInstanceIDs.count) == [1000, 1000, 500])
            let instances = try await db.taskInstances(arrayID: fixture.arrayID)
            #expect(instances.map(\.taskID) == fixture.taskIDs, "chunks in ascending task id order")
            for batch in Int32(1)...3 {
                let steps = instances.filter { $0.batchNumber == batch }.map(\.stepID)
                #expect(steps == Array(0..<Int32(steps.count)))
            }
        }
    }

    @Test func configurableChunkSize() async throws {
        try await TestPostgres.withDatabase { db in
            let fixture = try await ArrayFixture.make(db, tasks: 10)
            let out = try await fixture.queueAll(db, chunkSize: 4)
            #expect(out.batches.map(\.taskInstanceIDs.count) == [4, 4, 2])
        }
    }

    @Test func aTaskThatDoesNotMoveAfterTheStatusReadLeavesNoGapInTheSteps() async throws {
        try await TestPostgres.withDatabase { db in
            let fixture = try await ArrayFixture.make(db, tasks: 7)
            let vetoed = fixture.taskIDs[2]
            // A trigger that silently skips one task's update: the effect of an outside writer that
            // changed the task between the operation's status read and its write.
            try await db.client.query(
                """
                CREATE FUNCTION veto_one() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN IF OLD.id = \(unescaped: String(vetoed)) THEN RETURN NULL; END IF; RETURN NEW; END $$
                """, logger: logger)
            try await db.client.query(
                "CREATE TRIGGER veto_one BEFORE UPDATE ON task FOR EACH ROW EXECUTE FUNCTION veto_one()", logger: logger)
            let out = try await fixture.queueAll(db, chunkSize: 3)

            let others = fixture.taskIDs.filter { $0 != vetoed }
            #expect(out.tasksByStatus == ["G": [vetoed], "Q": others])
            let instances = try await db.taskInstances(arrayID: fixture.arrayID)
            #expect(instances.map(\.taskID) == others)
            #expect(instances.map(\.batchNumber) == [1, 1, 1, 2, 2, 2])
            #expect(instances.map(\.stepID) == [0, 1, 2, 0, 1, 2])
            #expect(out.batches.map(\.taskInstanceIDs) == [Array(instances.prefix(3).map(\.id)), Array(instances.suffix(3).map(\.id))])
            #expect(out.transitions.first { $0.entity == .task }?.ids == others)
            let next = try await db.perform(
                RecordArrayBatchNum(arrayID: fixture.arrayID, taskIDs: [vetoed], taskResourcesID: 1, workflowRunID: 1), logger: logger)
            #expect(next.batches.isEmpty && next.tasksByStatus == ["G": [vetoed]])
            try await db.client.query("DROP TRIGGER veto_one ON task", logger: logger)
            let last = try await db.perform(
                RecordArrayBatchNum(arrayID: fixture.arrayID, taskIDs: [vetoed], taskResourcesID: 1, workflowRunID: 1), logger: logger)
            #expect(last.batches.map(\.batchNumber) == [3], "the counter advanced by the batches opened, not by the tasks asked for")
        }
    }

    @Test func idsOfAnotherArrayOrUnknownRefuseTheWholeCommand() async throws {
        try await TestPostgres.withDatabase { db in
            let mine = try await ArrayFixture.make(db, tasks: 3)
            let theirs = try await ArrayFixture.make(db, tasks: 1)
            for stray in [theirs.taskIDs[0], 9_999_999] {
                let error = await #expect(throws: OperationError.self) {
                    try await db.perform(
                        RecordArrayBatchNum(arrayID: mine.arrayID, taskIDs: mine.taskIDs + [stray], taskResourcesID: 1, workflowRunID: 1),
                        logger: logger)
                }
                #expect(error?.code == .tasksNotInArray)
                #expect(error?.message.contains("\(stray)") == true)
            }
            #expect(try await db.tasks(arrayID: mine.arrayID).allSatisfy { $0.status == "G" && $0.numAttempts == 0 })
            #expect(try await db.taskInstances(arrayID: mine.arrayID).isEmpty)
            #expect(try await mine.queueAll(db).batches.map(\.batchNumber) == [1], "the refused calls issued no batch number")
        }
    }

    @Test func tasksBetweenTheAskedIdsAreNeitherMovedNorReported() async throws {
        // The ids are read and moved as runs of consecutive ids (IDRuns): a gap in the request
        // must end a run, whoever owns the ids in the gap.
        try await TestPostgres.withDatabase { db in
            let fixture = try await ArrayFixture.make(db, tasks: 7)
            let ids = fixture.taskIDs
            let asked = [ids[0], ids[1], ids[3], ids[5], ids[6]]
            try await db.setTaskStatus([ids[5]], to: .adjustingResources)
            let out = try await db.perform(
                RecordArrayBatchNum(arrayID: fixture.arrayID, taskIDs: asked, taskResourcesID: 1, workflowRunID: 1), logger: logger)
            #expect(out.tasksByStatus == ["Q": asked])
            let statuses = Dictionary(uniqueKeysWithValues: try await db.tasks(arrayID: fixture.arrayID).map { ($0.id, $0.status) })
            #expect(statuses[ids[2]] == "G" && statuses[ids[4]] == "G")
            #expect(try await db.taskInstances(arrayID: fixture.arrayID).map(\.taskID) == asked)
            #expect(Set(out.transitions.filter { $0.entity == .task }.map { "\($0.from ?? "")\($0.ids)" }) == [
                "G\([ids[0], ids[1], ids[3], ids[6]])", "A\([ids[5]])",
            ])
        }
    }

    @Test func arraysWhoseTaskIdsInterleaveAreQueuedTogether() async throws {
        // Two arrays created at once by two writers: their ids alternate, every run is one id long.
        try await TestPostgres.withDatabase { db in
            let a = try await ArrayFixture.make(db, tasks: 0)
            let b = try await ArrayFixture.make(db, tasks: 0)
            let rows = try await db.client.query(
                """
                WITH created AS (
                    INSERT INTO task (workflow_id, array_id, status)
                    SELECT 1, CASE WHEN n % 2 = 0 THEN \(a.arrayID) ELSE \(b.arrayID) END, 'G'
                    FROM generate_series(1, 10) AS n ORDER BY n
                    RETURNING id, array_id
                )
                SELECT array_agg(id ORDER BY id) FILTER (WHERE array_id = \(a.arrayID)),
                       array_agg(id ORDER BY id) FILTER (WHERE array_id = \(b.arrayID)) FROM created
                """, logger: logger)
            var (ofA, ofB): ([Int64], [Int64]) = ([], [])
            for try await (x, y) in rows.decode(([Int64], [Int64]).self) { (ofA, ofB) = (x, y) }
            #expect(ofA.count == 5 && ofB.count == 5)
            let results = try await db.transaction(logger: logger) { connection in
                try await RecordArrayBatchNum.applyGrouped([
                    RecordArrayBatchNum(arrayID: a.arrayID, taskIDs: ofA, taskResourcesID: 1, workflowRunID: 1),
                    RecordArrayBatchNum(arrayID: b.arrayID, taskIDs: Array(ofB.prefix(3)) + [ofA[0]], taskResourcesID: 1, workflowRunID: 1),
                ], on: connection, logger: logger)
            }
            #expect(try results[0].get().tasksByStatus == ["Q": ofA])
            #expect(throws: OperationError.self) { try results[1].get() }
            #expect(try await db.taskInstances(arrayID: a.arrayID).map(\.taskID) == ofA)
            #expect(try await db.taskInstances(arrayID: b.arrayID).isEmpty, "the refused command moved nothing")
            #expect(try await db.tasks(arrayID: b.arrayID).allSatisfy { $0.status == "G" })
        }
    }

    @Test func unknownArrayIsNotFound() async throws {
        try await TestPostgres.withDatabase { db in
            let error = await #expect(throws: OperationError.self) {
                try await db.perform(RecordArrayBatchNum(arrayID: 12345, taskIDs: [1], taskResourcesID: 1, workflowRunID: 1), logger: logger)
            }
            #expect(error?.code == .arrayNotFound)
        }
    }

    @Test(arguments: [
        RecordArrayBatchNum(arrayID: 1, taskIDs: [], taskResourcesID: 1, workflowRunID: 1),
        RecordArrayBatchNum(arrayID: 1, taskIDs: [1, -2], taskResourcesID: 1, workflowRunID: 1),
        RecordArrayBatchNum(arrayID: 0, taskIDs: [1], taskResourcesID: 1, workflowRunID: 1),
        RecordArrayBatchNum(arrayID: 1, taskIDs: [1], taskResourcesID: 0, workflowRunID: 1),
        RecordArrayBatchNum(arrayID: 1, taskIDs: [1], taskResourcesID: 1, workflowRunID: -1),
        RecordArrayBatchNum(arrayID: 1, taskIDs: [1], taskResourcesID: 1, workflowRunID: 1, chunkSize: 0),
    ])
    func rejectsBadInput(_ operation: RecordArrayBatchNum) async throws {
        let error = #expect(throws: OperationError.self) { try operation.validate() }
        #expect(error?.code == .invalidArgument)
    }

    @Test func duplicateIDsInTheRequestAreQueuedOnce() async throws {
        try await TestPostgres.withDatabase { db in
            let fixture = try await ArrayFixture.make(db, tasks: 2)
            let out = try await db.perform(
                RecordArrayBatchNum(arrayID: fixture.arrayID, taskIDs: fixture.taskIDs + fixture.taskIDs, taskResourcesID: 1,
                                    workflowRunID: 1), logger: logger)
            #expect(out.batches[0].taskInstanceIDs.count == 2)
            #expect(try await db.taskInstances(arrayID: fixture.arrayID).count == 2)
        }
    }

    @Test func queueingManyArraysTogetherMatchesQueueingEachAlone() async throws {
        try await TestPostgres.withDatabase { db in
            // Twin sets of arrays, prepared alike: one set queued in one grouped call, one op by op.
            // 0: all registering, chunks of 2; 1: two adjusting and one done, chunks of 3; 2: two tasks
            // queued earlier, chunks of 2; 3: names a task of array 0 (refused); 4: nothing movable.
            func prepare() async throws -> [ArrayFixture] {
                var arrays: [ArrayFixture] = []
                for n in 0..<5 {
                    let fixture = try await ArrayFixture.make(db, tasks: 5)
                    let ids = fixture.taskIDs
                    switch n {
                    case 1:
                        try await db.setTaskStatus([ids[1], ids[3]], to: .adjustingResources)
                        try await db.setTaskStatus([ids[4]], to: .done)
                    case 2:
                        _ = try await db.perform(
                            RecordArrayBatchNum(arrayID: fixture.arrayID, taskIDs: Array(ids[0..<2]), taskResourcesID: 1, workflowRunID: 1),
                            logger: logger)
                    case 4: try await db.setTaskStatus(ids, to: .done)
                    default: break
                    }
                    arrays.append(fixture)
                }
                return arrays
            }
            func operations(_ arrays: [ArrayFixture]) -> [RecordArrayBatchNum] {
                let chunks: [Int32] = [2, 3, 2, 2, 2]
                return arrays.enumerated().map { n, fixture in
                    // Array 0's command names one of its tasks twice; array 3's names a task of array 0.
                    RecordArrayBatchNum(arrayID: fixture.arrayID,
                                        taskIDs: fixture.taskIDs + (n == 0 ? [fixture.taskIDs[3]] : []) + (n == 3 ? [arrays[0].taskIDs[0]] : []),
                                        taskResourcesID: 7, workflowRunID: 8, chunkSize: chunks[n])
                } + [RecordArrayBatchNum(arrayID: 999_999_999, taskIDs: [1], taskResourcesID: 7, workflowRunID: 8)]
            }
            let together = try await prepare()
            let alone = try await prepare()
            let groupedResults = try await db.transaction(logger: logger) { connection in
                try await RecordArrayBatchNum.applyGrouped(operations(together), on: connection, logger: logger)
            }
            var aloneResults: [Result<RecordArrayBatchNum.Output, OperationError>] = []
            for operation in operations(alone) {
                do {
                    aloneResults.append(.success(try await db.perform(operation, logger: logger)))
                } catch let error as OperationError {
                    aloneResults.append(.failure(error))
                }
            }

            /// An output with ids replaced by positions in the array's task list, comparable across twins.
            func shape(_ result: Result<RecordArrayBatchNum.Output, OperationError>, _ fixture: ArrayFixture?) -> String {
                switch result {
                case .failure(let error): return error.code.rawValue
                case .success(let out):
                    let position = { (id: Int64) in fixture!.taskIDs.firstIndex(of: id)! }
                    let batches = out.batches.map { "\($0.batchNumber):\($0.taskInstanceIDs.count)" }
                    let statuses = out.tasksByStatus.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.map(position))" }
                    let transitions = out.transitions.map { "\($0.entity.rawValue) \($0.from ?? "-")→\($0.to) b\($0.batchNumber ?? 0) ×\($0.ids.count)" }
                    return "\(batches) \(statuses) \(transitions.sorted())"
                }
            }
            let shapes = { (results: [Result<RecordArrayBatchNum.Output, OperationError>], arrays: [ArrayFixture]) in
                results.enumerated().map { shape($1, $0 < arrays.count ? arrays[$0] : nil) }
            }
            #expect(shapes(groupedResults, together) == shapes(aloneResults, alone))
            #expect(groupedResults.map { (try? $0.get())?.batches.map { "\($0.batchNumber):\($0.taskInstanceIDs.count)" } }
                    == [["1:2", "2:2", "3:1"], ["1:3", "2:1"], ["2:2", "3:1"], nil, [], nil])
            let codes: [OperationError.Code?] = groupedResults.map { result in
                if case .failure(let error) = result { error.code } else { nil }
            }
            #expect(codes == [nil, nil, nil, .tasksNotInArray, nil, .arrayNotFound])
            if case .failure(let error) = groupedResults[3] { #expect(error.message.contains("[\(together[0].taskIDs[0])]")) }
            // Each batch lists its instances in step order, as the database numbered them.
            for (n, result) in groupedResults.prefix(together.count).enumerated() {
                guard let out = try? result.get() else { continue }
                let rows = try await db.taskInstances(arrayID: together[n].arrayID)
                for batch in out.batches {
                    #expect(batch.taskInstanceIDs == rows.filter { $0.batchNumber == batch.batchNumber }.map(\.id))
                }
            }

            for (g, a) in zip(together, alone) {
                let position = { (fixture: ArrayFixture, id: Int64) in fixture.taskIDs.firstIndex(of: id)! }
                #expect(try await db.tasks(arrayID: g.arrayID).map { "\($0.status)\($0.numAttempts)" }
                        == (try await db.tasks(arrayID: a.arrayID).map { "\($0.status)\($0.numAttempts)" }))
                #expect(try await db.taskInstances(arrayID: g.arrayID).map { "\(position(g, $0.taskID)) \($0.batchNumber).\($0.stepID) \($0.status)" }
                        == (try await db.taskInstances(arrayID: a.arrayID).map { "\(position(a, $0.taskID)) \($0.batchNumber).\($0.stepID) \($0.status)" }))
            }
            // The counters moved alike: the next batch of each array gets the same number.
            for (g, a) in zip(together, alone) {
                let next = { (fixture: ArrayFixture) in
                    try await db.perform(RecordArrayBatchNum(arrayID: fixture.arrayID, taskIDs: fixture.taskIDs, taskResourcesID: 1, workflowRunID: 1),
                                         logger: logger)
                }
                try await db.setTaskStatus(g.taskIDs, to: .adjustingResources)
                try await db.setTaskStatus(a.taskIDs, to: .adjustingResources)
                #expect(try await next(g).batches.map(\.batchNumber) == (try await next(a).batches.map(\.batchNumber)))
            }
        }
    }
}

extension RecordArrayBatchNum: CustomTestStringConvertible {
    public var testDescription: String {
        "array \(arrayID) ids \(taskIDs) resources \(taskResourcesID) run \(workflowRunID) chunk \(chunkSize)"
    }
}
