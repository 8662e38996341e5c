import ArrayFSM
import ArrayFSMTesting
import ArrayFSMTools
import Testing

@Suite struct GetArrayMaxConcurrentlyRunningTests {
    @Test func readsByIDAndByWorkflowAndTaskTemplateVersion() async throws {
        try await TestPostgres.withDatabase { db in
            let array = try await db.perform(
                AddArray(workflowID: 7, taskTemplateVersionID: 8, maxConcurrentlyRunning: 42, name: "a"), logger: TestPostgres.logger)
            _ = try await db.perform(
                AddArray(workflowID: 7, taskTemplateVersionID: 9, maxConcurrentlyRunning: 1, name: "other"), logger: TestPostgres.logger)
            let byID = try await db.perform(GetArrayMaxConcurrentlyRunning(.arrayID(array.arrayID)), logger: TestPostgres.logger)
            #expect(byID.maxConcurrentlyRunning == 42)
            #expect(byID.arrayID == array.arrayID)
            let byKey = try await db.perform(
                GetArrayMaxConcurrentlyRunning(.workflow(workflowID: 7, taskTemplateVersionID: 8)), logger: TestPostgres.logger)
            #expect(byKey == byID)
        }
    }

    @Test func missingArrayIsNotFound() async throws {
        try await TestPostgres.withDatabase { db in
            let byID = await #expect(throws: OperationError.self) {
                try await db.perform(GetArrayMaxConcurrentlyRunning(.arrayID(999)), logger: TestPostgres.logger)
            }
            #expect(byID?.code == .arrayNotFound)
            let byKey = await #expect(throws: OperationError.self) {
                try await db.perform(
                    GetArrayMaxConcurrentlyRunning(.workflow(workflowID: 1, taskTemplateVersionID: 1)), logger: TestPostgres.logger)
            }
            #expect(byKey?.code == .arrayNotFound)
            let invalid = await #expect(throws: OperationError.self) {
                try await db.perform(GetArrayMaxConcurrentlyRunning(.arrayID(-3)), logger: TestPostgres.logger)
            }
            #expect(invalid?.code == .invalidArgument)
        }
    }
}
