/// The status of a task, stored as Jobmon's one-letter code.
public enum TaskStatus: String, Sendable, Hashable, CaseIterable, Codable {
    case registering = "G"
    case queued = "Q"
    case instantiating = "I"
    case launched = "O"
    case running = "R"
    case done = "D"
    case errorRecoverable = "E"
    case adjustingResources = "A"
    case errorFatal = "F"

    /// Jobmon's label for the status, as seeded into `task_status`.
    public var label: String {
        switch self {
        case .registering: "REGISTERING"
        case .queued: "QUEUED"
        case .instantiating: "INSTANTIATING"
        case .launched: "LAUNCHED"
        case .running: "RUNNING"
        case .done: "DONE"
        case .errorRecoverable: "ERROR_RECOVERABLE"
        case .adjustingResources: "ADJUSTING_RESOURCES"
        case .errorFatal: "ERROR_FATAL"
        }
    }
}
