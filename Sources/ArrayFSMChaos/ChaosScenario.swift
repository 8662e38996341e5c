/// A fault-injection scenario: what goes wrong while a generated workload is replayed.
public enum ChaosScenario: String, Sendable, CaseIterable, Codable {
    /// `serve` killed with SIGKILL at random points and restarted each time.
    case kills
    /// Members added to and removed from the consumer group mid-load (1 → 2 → 3 → 2 → 1).
    case rebalance
    /// PostgreSQL restarted with a fast shutdown, and the service's connections terminated.
    case postgres
    /// The broker taken down and brought back (the mock cluster's broker down/up).
    case broker
    /// A real broker (noida-db) restarted from its data directory.
    case brokerRestart = "broker-restart"
    /// Malformed and illegal commands mixed into the workload (and a 10 MB message).
    case badInput = "bad-input"
    /// Another session holding the arrays' locks (lock timeouts) and taking them in the
    /// opposite order (deadlocks).
    case locks
    /// What careless or hostile producers send (``HostileInput``), in bursts amid a normal workload.
    case hostile

    /// Kinds of input the scenario reports one by one (``ChaosReport/inputs``).
    public var inputKinds: Int { self == .hostile ? HostileInput.Kind.allCases.count : 0 }

    /// One line for reports.
    public var summary: String {
        switch self {
        case .kills: "SIGKILL serve at random points, restart it"
        case .rebalance: "add and remove group members mid-load"
        case .postgres: "restart PostgreSQL (fast), terminate the service's connections"
        case .broker: "take the broker down and bring it back (mock cluster)"
        case .brokerRestart: "restart a real broker from its data dir (noida-db)"
        case .badInput: "malformed and illegal commands, duplicate ids, a 10 MB message"
        case .locks: "hold the arrays' locks from another session; force deadlocks"
        case .hostile: "reply loops, foreign and refused reply topics, reused ids, NUL, 10,000 unknown types, events read back"
        }
    }
}

/// How long and how hard a scenario runs.
public struct ChaosSize: Sendable {
    /// Workflows × arrays of the generated workload.
    public var workflows: Int
    public var arraysPerWorkflow: Int
    public var maxTasks: Int
    /// Faults injected (kills, restarts, member changes, lock rounds), at least one.
    public var faults: Int
    /// Seconds between faults.
    public var faultInterval: Double

    /// Small enough for CI: a few faults, a few hundred commands.
    public static let small = ChaosSize(workflows: 3, arraysPerWorkflow: 8, maxTasks: 300, faults: 3, faultInterval: 3)
    /// The long mode for the figures (50 kills).
    public static let long = ChaosSize(workflows: 10, arraysPerWorkflow: 20, maxTasks: 2000, faults: 50, faultInterval: 2)

    public init(workflows: Int, arraysPerWorkflow: Int, maxTasks: Int, faults: Int, faultInterval: Double) {
        self.workflows = workflows
        self.arraysPerWorkflow = arraysPerWorkflow
        self.maxTasks = maxTasks
        self.faults = faults
        self.faultInterval = faultInterval
    }
}
