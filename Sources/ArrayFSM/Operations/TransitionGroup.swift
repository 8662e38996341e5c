/// A set of rows of one entity that one operation moved from one status to another.
///
/// Operations return these so the caller can publish one transition event per group.
public struct TransitionGroup: Sendable, Hashable {
    /// Which table the ids are from.
    public enum Entity: String, Sendable, Hashable, Codable {
        case task
        case taskInstance = "task_instance"
    }

    public var entity: Entity
    /// The status before, or `nil` when the rows were created by the operation.
    public var from: String?
    public var to: String
    public var arrayID: Int64
    public var batchNumber: Int32?
    /// The ids moved, ascending.
    public var ids: [Int64]

    public init(entity: Entity, from: String?, to: String, arrayID: Int64, batchNumber: Int32?, ids: [Int64]) {
        self.entity = entity
        self.from = from
        self.to = to
        self.arrayID = arrayID
        self.batchNumber = batchNumber
        self.ids = ids
    }

    static func tasks(
        _ from: TaskStatus, _ to: TaskStatus, arrayID: Int64, batchNumber: Int32? = nil, ids: [Int64]
    ) -> TransitionGroup {
        TransitionGroup(entity: .task, from: from.rawValue, to: to.rawValue, arrayID: arrayID, batchNumber: batchNumber, ids: ids)
    }

    static func taskInstances(
        _ from: TaskInstanceStatus?, _ to: TaskInstanceStatus, arrayID: Int64, batchNumber: Int32?, ids: [Int64]
    ) -> TransitionGroup {
        TransitionGroup(
            entity: .taskInstance, from: from?.rawValue, to: to.rawValue, arrayID: arrayID, batchNumber: batchNumber, ids: ids)
    }
}

extension Array where Element == TransitionGroup {
    /// Drops groups that moved nothing, so no empty transition event is ever published.
    func nonEmpty() -> [TransitionGroup] { filter { !$0.ids.isEmpty } }
}
