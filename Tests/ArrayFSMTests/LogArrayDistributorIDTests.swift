import ArrayFSM
import ArrayFSMTesting
import ArrayFSMTools
import Testing

@Suite struct LogArrayDistributorIDTests {
    let logger = TestPostgres.logger

    @Test func setsDistributorIDsOfThatArrayOnlyWithTemplates() async throws {
        try await TestPostgres.withDatabase { db in
            let mine = try await ArrayFixture.make(db, tasks: 3)
            let theirs = try await ArrayFixture.make(db, tasks: 1)
            let myTIs = try await mine.queueAll(db).batches[0].taskInstanceIDs
            let theirTI = try await theirs.queueAll(db).batches[0].taskInstanceIDs[0]

            var map: [Int64: String] = [:]
            for (step, id) in myTIs.enumerated() { map[id] = "777_\(step)" }
            map[theirTI] = "should-not-land"
            map[88_888_888] = "unknown"
            let out = try await db.perform(
                LogArrayDistributorID(arrayID: mine.arrayID, distributorIDs: map,
                                      stdout: "/logs/{distributor_id}.out", stderr: "/logs/{task_instance_id}.err"),
                logger: logger)
            #expect(out.taskInstanceIDs == myTIs.sorted())
            #expect(out.skippedIDs == [theirTI, 88_888_888].sorted())

            let instances = try await db.taskInstances(arrayID: mine.arrayID)
            for instance in instances {
                #expect(instance.distributorID == "777_\(instance.stepID)")
                #expect(instance.stdout == "/logs/777_\(instance.stepID).out")
                #expect(instance.stderr == "/logs/\(instance.id).err")
                #expect(instance.status == "Q", "distributor ids are written whatever the status")
            }
            let other = try await db.taskInstances(arrayID: theirs.arrayID)
            #expect(other[0].distributorID == nil)
        }
    }

    @Test func withoutTemplatesKeepsExistingPaths() async throws {
        try await TestPostgres.withDatabase { db in
            let fixture = try await ArrayFixture.make(db, tasks: 1)
            let ti = try await fixture.queueAll(db).batches[0].taskInstanceIDs[0]
            _ = try await db.perform(
                LogArrayDistributorID(arrayID: fixture.arrayID, distributorIDs: [ti: "1_0"], stdout: "/a", stderr: "/b"), logger: logger)
            _ = try await db.perform(LogArrayDistributorID(arrayID: fixture.arrayID, distributorIDs: [ti: "2_0"]), logger: logger)
            let row = try await db.taskInstances(arrayID: fixture.arrayID)[0]
            #expect(row.distributorID == "2_0")
            #expect(row.stdout == "/a" && row.stderr == "/b")
        }
    }

    @Test func groupedWithoutTemplatesKeepsExistingPathsAndSkipsStrangers() async throws {
        try await TestPostgres.withDatabase { db in
            var operations: [LogArrayDistributorID] = []
            var fixtures: [(ArrayFixture, [Int64])] = []
            for n in 0..<3 {
                let fixture = try await ArrayFixture.make(db, tasks: 2)
                let tis = try await fixture.queueAll(db).batches[0].taskInstanceIDs
                _ = try await db.perform(
                    LogArrayDistributorID(arrayID: fixture.arrayID, distributorIDs: [tis[0]: "old"], stdout: "/o\(n)", stderr: "/e\(n)"),
                    logger: logger)
                fixtures.append((fixture, tis))
            }
            for (n, (fixture, tis)) in fixtures.enumerated() {
                // Each command also names an instance of the next array: skipped, not written.
                let stranger = fixtures[(n + 1) % fixtures.count].1[1]
                operations.append(LogArrayDistributorID(arrayID: fixture.arrayID,
                                                        distributorIDs: [tis[0]: "5\(n)_0", tis[1]: "5\(n)_1", stranger: "nope"]))
            }
            let results = try await db.transaction(logger: logger) { connection in
                try await LogArrayDistributorID.applyGrouped(operations, on: connection, logger: logger)
            }
            for (n, (fixture, tis)) in fixtures.enumerated() {
                let out = try results[n].get()
                #expect(out.taskInstanceIDs == tis.sorted())
                #expect(out.skippedIDs == [fixtures[(n + 1) % fixtures.count].1[1]])
                let rows = try await db.taskInstances(arrayID: fixture.arrayID)
                #expect(rows.map(\.distributorID) == ["5\(n)_0", "5\(n)_1"])
                #expect(rows[0].stdout == "/o\(n)" && rows[0].stderr == "/e\(n)")
                #expect(rows[1].stdout == nil && rows[1].stderr == nil)
            }
        }
    }

    @Test func byStepNamesInstancesByBatchAndStep() async throws {
        try await TestPostgres.withDatabase { db in
            let fixture = try await ArrayFixture.make(db, tasks: 5)
            let batches = try await fixture.queueAll(db, chunkSize: 3).batches
            let out = try await db.perform(
                LogArrayDistributorID(arrayID: fixture.arrayID, batchNumber: 2, distributorIDsByStep: [0: "55_0", 1: "55_1", 7: "55_7"],
                                      stdout: "/o/{distributor_id}"), logger: logger)
            #expect(out.taskInstanceIDs == batches[1].taskInstanceIDs.sorted())
            let rows = try await db.taskInstances(arrayID: fixture.arrayID)
            #expect(rows.map(\.distributorID) == [nil, nil, nil, "55_0", "55_1"])
            #expect(rows.last?.stdout == "/o/55_1")
            let error = #expect(throws: OperationError.self) {
                try LogArrayDistributorID(arrayID: 1, batchNumber: 0, distributorIDsByStep: [0: "x"]).validate()
            }
            #expect(error?.code == .invalidArgument)
        }
    }

    @Test func rejectsEmptyMapsAndBadIDs() throws {
        for operation in [
            LogArrayDistributorID(arrayID: 1, distributorIDs: [:]),
            LogArrayDistributorID(arrayID: 1, distributorIDs: [-1: "x"]),
            LogArrayDistributorID(arrayID: 0, distributorIDs: [1: "x"]),
            LogArrayDistributorID(arrayID: 1, distributorIDs: [1: String(repeating: "x", count: 5000)]),
        ] {
            let error = #expect(throws: OperationError.self) { try operation.validate() }
            #expect(error?.code == .invalidArgument)
        }
    }
}
