import ArrayFSM
import ArrayFSMTesting
import ArrayFSMTools
import Testing

@Suite struct AddArrayTests {
    @Test func insertsThenOverwritesMaxConcurrentlyRunningButNotName() async throws {
        try await TestPostgres.withDatabase { db in
            let first = try await db.perform(
                AddArray(workflowID: 1, taskTemplateVersionID: 2, maxConcurrentlyRunning: 10, name: "first"),
                logger: TestPostgres.logger)
            #expect(first.created)
            let again = try await db.perform(
                AddArray(workflowID: 1, taskTemplateVersionID: 2, maxConcurrentlyRunning: 20, name: "renamed"),
                logger: TestPostgres.logger)
            #expect(again.arrayID == first.arrayID)
            #expect(!again.created)
            let rows = try await db.client.query(
                "SELECT name, max_concurrently_running FROM \"array\" WHERE id = \(first.arrayID)")
            for try await (name, limit) in rows.decode((String, Int32).self) {
                #expect(name == "first")
                #expect(limit == 20)
            }
        }
    }

    @Test func defaultsMaxConcurrentlyRunningToInt32Max() async throws {
        try await TestPostgres.withDatabase { db in
            let array = try await db.perform(AddArray(workflowID: 3, taskTemplateVersionID: 4, name: "a"), logger: TestPostgres.logger)
            let limit = try await db.perform(GetArrayMaxConcurrentlyRunning(.arrayID(array.arrayID)), logger: TestPostgres.logger)
            #expect(limit.maxConcurrentlyRunning == 2_147_483_647)
        }
    }

    @Test func concurrentFirstInsertsReturnTheSameID() async throws {
        try await TestPostgres.withDatabase(maxConnections: 8) { db in
            for key in Int64(1)...20 {
                let ids = try await withThrowingTaskGroup(of: Int64.self) { group in
                    for _ in 0..<4 {
                        group.addTask {
                            try await db.perform(
                                AddArray(workflowID: 100, taskTemplateVersionID: key, maxConcurrentlyRunning: 5, name: "race"),
                                logger: TestPostgres.logger
                            ).arrayID
                        }
                    }
                    return try await group.reduce(into: Set<Int64>()) { $0.insert($1) }
                }
                #expect(ids.count == 1, "key \(key) produced ids \(ids)")
            }
            let count = try await db.client.query("SELECT count(*) FROM \"array\" WHERE workflow_id = 100")
            for try await n in count.decode(Int64.self) { #expect(n == 20) }
        }
    }

    @Test(arguments: [
        AddArray(workflowID: 0, taskTemplateVersionID: 1, name: "x"),
        AddArray(workflowID: 1, taskTemplateVersionID: -5, name: "x"),
        AddArray(workflowID: 1, taskTemplateVersionID: 1, maxConcurrentlyRunning: -1, name: "x"),
        AddArray(workflowID: 1, taskTemplateVersionID: 1, name: String(repeating: "n", count: 256)),
    ])
    func rejectsBadInput(_ operation: AddArray) async throws {
        try await TestPostgres.withDatabase { db in
            let error = await #expect(throws: OperationError.self) { try await db.perform(operation, logger: TestPostgres.logger) }
            #expect(error?.code == .invalidArgument)
            let count = try await db.client.query("SELECT count(*) FROM \"array\"")
            for try await n in count.decode(Int64.self) { #expect(n == 0) }
        }
    }
}

extension AddArray: CustomTestStringConvertible {
    public var testDescription: String { "wf \(workflowID) ttv \(taskTemplateVersionID) max \(maxConcurrentlyRunning) name \(name.count) chars" }
}
