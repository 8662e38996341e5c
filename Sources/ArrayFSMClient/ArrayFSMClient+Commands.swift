// ArrayFSMClient — the scheduler's side of the wire contract: commands sent over Kafka, typed
// answers read from a private reply topic. Knows no SQL and nothing of serve's internals.

/// One method per command type (docs/contract.md), named as the type: each sends the command and
/// waits for its typed result, and throws ``CommandRejected`` when serve refuses it or
/// ``CommandTimeout`` when no answer came by the deadline. `id` names the command (a new UUID by
/// default); a call with an earlier identical command's id gets that command's answer again.
extension ArrayFSMClient {
    public func addArray(workflowID: Int64, taskTemplateVersionID: Int64, name: String? = nil,
                         maxConcurrentlyRunning: Int32? = nil, id: String? = nil) async throws -> AddArrayResult {
        try await call(.addArray(workflowID: workflowID, taskTemplateVersionID: taskTemplateVersionID, name: name,
                                 maxConcurrentlyRunning: maxConcurrentlyRunning, id: id))
    }

    public func recordArrayBatchNum(arrayID: Int64, taskIDs: [Int64], taskResourcesID: Int64, workflowRunID: Int64,
                                    id: String? = nil) async throws -> RecordArrayBatchNumResult {
        try await call(.recordArrayBatchNum(arrayID: arrayID, taskIDs: taskIDs, taskResourcesID: taskResourcesID,
                                            workflowRunID: workflowRunID, id: id))
    }

    public func instantiateArrayBatch(arrayID: Int64, batchNumber: Int32, id: String? = nil) async throws -> BatchTransitionResult {
        try await call(.instantiateArrayBatch(arrayID: arrayID, batchNumber: batchNumber, id: id))
    }

    public func instantiateTaskInstances(taskInstanceIDs: [Int64], arrayID: Int64? = nil,
                                         id: String? = nil) async throws -> TaskInstanceBatchesResult {
        try await call(.instantiateTaskInstances(taskInstanceIDs: taskInstanceIDs, arrayID: arrayID, id: id))
    }

    public func transitionArrayToLaunched(arrayID: Int64, batchNumber: Int32, nextReportIncrement: Double,
                                          id: String? = nil) async throws -> BatchTransitionResult {
        try await call(.transitionArrayToLaunched(arrayID: arrayID, batchNumber: batchNumber, nextReportIncrement: nextReportIncrement, id: id))
    }

    public func logArraySubmitFailed(arrayID: Int64, batchNumber: Int32, id: String? = nil) async throws -> BatchTransitionResult {
        try await call(.logArraySubmitFailed(arrayID: arrayID, batchNumber: batchNumber, id: id))
    }

    public func logArrayDistributorID(arrayID: Int64, distributorIDs: [Int64: String],
                                      id: String? = nil) async throws -> LogArrayDistributorIDResult {
        try await call(.logArrayDistributorID(arrayID: arrayID, distributorIDs: distributorIDs, id: id))
    }

    public func logArrayDistributorID(arrayID: Int64, batchNumber: Int32, distributorIDsByStep: [Int32: String],
                                      id: String? = nil) async throws -> LogArrayDistributorIDResult {
        try await call(.logArrayDistributorID(arrayID: arrayID, batchNumber: batchNumber, distributorIDsByStep: distributorIDsByStep, id: id))
    }

    public func transitionToKilled(arrayID: Int64, batchNumber: Int32, id: String? = nil) async throws -> BatchTransitionResult {
        try await call(.transitionToKilled(arrayID: arrayID, batchNumber: batchNumber, id: id))
    }

    public func getArrayMaxConcurrentlyRunning(arrayID: Int64, id: String? = nil) async throws -> MaxConcurrentlyRunningResult {
        try await call(.getArrayMaxConcurrentlyRunning(arrayID: arrayID, id: id))
    }

    public func getArrayMaxConcurrentlyRunning(workflowID: Int64, taskTemplateVersionID: Int64,
                                               id: String? = nil) async throws -> MaxConcurrentlyRunningResult {
        try await call(.getArrayMaxConcurrentlyRunning(workflowID: workflowID, taskTemplateVersionID: taskTemplateVersionID, id: id))
    }
}
