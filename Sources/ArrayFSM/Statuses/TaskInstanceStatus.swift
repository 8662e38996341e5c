/// The status of a task instance (one attempt at running a task), stored as Jobmon's one-letter code.
public enum TaskInstanceStatus: String, Sendable, Hashable, CaseIterable, Codable {
    case queued = "Q"
    case instantiated = "I"
    case launched = "O"
    case running = "R"
    case done = "D"
    case error = "E"
    case errorFatal = "F"
    case killSelf = "K"
    case triaging = "T"
    case unknownError = "U"
    case noDistributorID = "W"
    case noHeartbeat = "X"
    case resourceError = "Z"

    /// Jobmon's label for the status, as seeded into `task_instance_status`.
    public var label: String {
        switch self {
        case .queued: "QUEUED"
        case .instantiated: "INSTANTIATED"
        case .launched: "LAUNCHED"
        case .running: "RUNNING"
        case .done: "DONE"
        case .error: "ERROR"
        case .errorFatal: "ERROR_FATAL"
        case .killSelf: "KILL_SELF"
        case .triaging: "TRIAGING"
        case .unknownError: "UNKNOWN_ERROR"
        case .noDistributorID: "NO_DISTRIBUTOR_ID"
        case .noHeartbeat: "NO_HEARTBEAT"
        case .resourceError: "RESOURCE_ERROR"
        }
    }
}
