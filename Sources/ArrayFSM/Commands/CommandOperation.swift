// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
import Logging
import PostgresNIO

/// An operation that a command of the wire contract asks for: how its payload reads, and what a
/// successful apply answers.
///
/// A command type is one file in `Operations/` (the operation, its payload, its SQL, its grouped
/// form if it has one) and one line in ``CommandDecoder/operationType(of:)``.
public protocol CommandOperation: ArrayOperation {
    /// The payload's JSON shape (field names are the contract's).
    associatedtype Payload: Decodable

    /// The operation a payload asks for; throws ``OperationError`` for a payload that is valid
    /// JSON of the right shape but still not a command (`distributor_ids_by_step` without `batch_number`).
    init(payload: Payload) throws(OperationError)

    /// The result event's `result` and the transitions a successful apply made.
    static func answer(_ output: Output) -> CommandAnswer
}

/// What an applied command answers: its result payload and the rows it moved.
public struct CommandAnswer: Sendable {
    public var result: ResultPayload
    public var transitions: [TransitionGroup]

    public init(_ result: ResultPayload, transitions: [TransitionGroup] = []) {
        self.result = result
        self.transitions = transitions
    }
}

/// A command operation of which a run of commands on distinct arrays is applied by one set of
/// statements, each command's result exactly what applying it alone would give.
public protocol GroupableOperation: CommandOperation {
    /// The array that keeps commands of one run apart (a run names each array once); nil when this
    /// command is applied alone (a lookup by workflow, distributor ids by step).
    var groupingArrayID: Int64? { get }
    /// The ids that keep commands of one run apart: a run holds commands of one kind whose lists
    /// are disjoint. By default the grouping array; nil: applied alone.
    var groupingIDs: [Int64]? { get }

    /// How many ids the command's statements bind: a run stops before its ids pass a limit.
    var boundIDs: Int { get }

    /// Applies commands on distinct arrays together, inside the caller's transaction; one result
    /// per command, in input order.
    static func applyGrouped(_ operations: [Self], on connection: PostgresConnection, logger: Logger) async throws
        -> [Result<Output, OperationError>]
}

extension GroupableOperation {
    public var boundIDs: Int { 1 }
    public var groupingIDs: [Int64]? { groupingArrayID.map { [$0] } }
}

extension CommandOperation {
    /// Reads the payload under `key` into this operation.
    static func decode<Key: CodingKey>(from container: KeyedDecodingContainer<Key>, forKey key: Key) throws -> any CommandOperation {
        try Self(payload: container.decode(Payload.self, forKey: key))
    }

    /// Applies the operation in the caller's open transaction and says what it answers.
    public func answer(on connection: PostgresConnection, logger: Logger) async throws -> CommandAnswer {
        Self.answer(try await apply(on: connection, logger: logger))
    }
}

extension BatchTransitionOutput {
    /// The answer of every batch-wide transition: how many instances and tasks moved.
    var answer: CommandAnswer {
        CommandAnswer(.batchTransition(taskInstances: taskInstanceIDs.count, tasks: taskIDs.count), transitions: transitions)
    }
}
