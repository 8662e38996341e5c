/// The command types of the wire contract (v1): Jobmon's six array routes, its distributor's Q → I
/// route, and two extensions.
public enum CommandType: String, Sendable, Hashable, CaseIterable, Codable {
    case addArray = "add_array"
    case recordArrayBatchNum = "record_array_batch_num"
    case transitionArrayToLaunched = "transition_array_to_launched"
    case transitionToKilled = "transition_to_killed"
    case logArrayDistributorID = "log_array_distributor_id"
    case getArrayMaxConcurrentlyRunning = "get_array_max_concurrently_running"
    case instantiateArrayBatch = "instantiate_array_batch"
    case logArraySubmitFailed = "log_array_submit_failed"
    case instantiateTaskInstances = "instantiate_task_instances"
}
