/// Jobmon's finite-state machine for tasks and task instances: which status changes are legal.
///
/// The operations encode their transitions in SQL (`WHERE status IN (...)`); this type is the
/// single written-down source of the rules, and the tests check every operation against it.
public enum StateMachine {
    /// Legal task-instance transitions, from → allowed targets.
    public static let taskInstance: [TaskInstanceStatus: Set<TaskInstanceStatus>] = [
        .queued: [.instantiated, .killSelf],
        .instantiated: [.launched, .noDistributorID, .killSelf, .running],
        .launched: [.running, .unknownError, .noHeartbeat, .resourceError, .killSelf, .errorFatal],
        .running: [.triaging, .error, .unknownError, .resourceError, .killSelf, .done],
        .triaging: [.running, .resourceError, .unknownError, .errorFatal],
        .killSelf: [.errorFatal, .done],
        .noHeartbeat: [.error],
    ]

    /// Legal task transitions, from → allowed targets.
    ///
    /// `transition_to_killed` additionally writes O/R → F directly: the workflow cannot resume
    /// while KILL_SELF instances exist, so nothing races it (Jobmon's explicit exception).
    public static let task: [TaskStatus: Set<TaskStatus>] = [
        .registering: [.queued],
        .adjustingResources: [.queued],
        .queued: [.instantiating],
        .instantiating: [.launched, .errorRecoverable, .running],
        .launched: [.running, .errorRecoverable],
        .running: [.done, .errorRecoverable],
        .errorRecoverable: [.adjustingResources, .queued, .errorFatal, .registering],
    ]

    /// The task transitions that the bulk kill is allowed to write besides the table above.
    public static let killOverrides: Set<Transition<TaskStatus>> = [
        Transition(from: .launched, to: .errorFatal),
        Transition(from: .running, to: .errorFatal),
    ]

    /// Whether a task-instance status change is legal.
    public static func isLegal(_ transition: Transition<TaskInstanceStatus>) -> Bool {
        taskInstance[transition.from]?.contains(transition.to) ?? false
    }

    /// Whether a task status change is legal (the kill override included).
    public static func isLegal(_ transition: Transition<TaskStatus>) -> Bool {
        (task[transition.from]?.contains(transition.to) ?? false) || killOverrides.contains(transition)
    }
}

/// A status change from one status to another.
public struct Transition<Status: Hashable & Sendable>: Hashable, Sendable {
    public var from: Status
    public var to: Status

    public init(from: Status, to: Status) {
        self.from = from
        self.to = to
    }
}
