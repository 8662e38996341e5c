// ArrayFSMService — the processor: command batches from Kafka, one transaction each, the outbox
// and its relay, readiness and metrics. Uses ArrayFSM for the domain and Kafka for the wire.
import ArrayFSM
import Logging
import PostgresNIO

/// Consecutive commands of one groupable type, on distinct arrays, that one set-based statement
/// applies together: many queueings, instantiations, launches, distributor-id maps or limit reads
/// become one round trip per step instead of one per step per command.
///
/// Only consecutive commands are grouped and each array (for `instantiate_task_instances`, each
/// instance) appears once, so per-array order is what it would be one by one. Commands that fail validation, repeats, and other types end the run.
struct CommandRun {
    var commands: [(Command, IncomingCommand)]

    var count: Int { commands.count }

    /// The longest run starting with `first` (which is the item before `index`).
    static func collect(
        startingWith first: Command, _ message: IncomingCommand, in items: [CommandBatchProcessor.Decoded], from index: Int,
        answered: [String: CommandBatchProcessor.StoredResult]
    ) -> CommandRun {
        var run = CommandRun(commands: [(first, message)])
        guard let leader = first.operation as? any GroupableOperation, let firstIDs = leader.groupingIDs,
            (try? first.validate()) != nil
        else { return run }
        let kind = ObjectIdentifier(type(of: leader))
        var taken = Set(firstIDs)
        var ids: Set<String> = [first.envelope.commandID]
        var rows = leader.boundIDs
        var next = index
        while next < items.count, run.count < 1000, case .command(let command, let message) = items[next],
            let member = command.operation as? any GroupableOperation, ObjectIdentifier(type(of: member)) == kind,
            let memberIDs = member.groupingIDs, taken.isDisjoint(with: memberIDs),
            (try? command.validate()) != nil,
            answered[command.envelope.commandID] == nil, !ids.contains(command.envelope.commandID),
            rows + member.boundIDs <= Self.maxRows
        {
            taken.formUnion(memberIDs)
            ids.insert(command.envelope.commandID)
            rows += member.boundIDs
            run.commands.append((command, message))
            next += 1
        }
        return run
    }

    /// Most ids one run's statements carry: a command may name ~100k ids within the message size
    /// limit, and a run of hundreds of those would bind gigabytes in one statement. (Rows touched
    /// are not capped: a batch transition names its batch, not its rows, and the batch's
    /// transaction holds the arrays' locks to its end either way.)
    static let maxRows = 200_000

    /// Applies the run (of two or more commands, all of one groupable type); one result per command, in order.
    func apply(on connection: PostgresConnection, logger: Logger) async throws -> [Result<CommandAnswer, OperationError>] {
        guard let leader = commands.first?.0.operation as? any GroupableOperation else { preconditionFailure("an empty run") }
        return try await Self.applyGrouped(leader, commands.map(\.0.operation), on: connection, logger: logger)
    }

    private static func applyGrouped<Operation: GroupableOperation>(
        _ leader: Operation, _ operations: [any CommandOperation], on connection: PostgresConnection, logger: Logger
    ) async throws -> [Result<CommandAnswer, OperationError>] {
        let typed = operations.map { operation in
            guard let typed = operation as? Operation else { preconditionFailure("a run holds one command type") }
            return typed
        }
        return try await Operation.applyGrouped(typed, on: connection, logger: logger).map { $0.map(Operation.answer) }
    }
}

extension Duration {
    var milliseconds: Double { Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15 }
}
