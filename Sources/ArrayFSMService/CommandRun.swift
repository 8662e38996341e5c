// ArrayFSMService — the processor: command batches from Kafka, one transaction each, the outbox
// and its relay, readiness and metrics. Uses ArrayFSM for the domain and Kafka for the wire.
import ArrayFSM
import Logging
import PostgresNIO

/// Consecutive commands of one groupable type, on distinct arrays, that one set-based statement
/// applies together: many queueings, instantiations, launches, distributor-id maps or limit reads become one round trip per step instead of
/// one per step per command.
///
/// Only consecutive commands are grouped and each array appears once, so per-array order is what
/// it would be one by one. Commands that fail validation, repeats, and other types end the run.
struct CommandRun {
    enum Kind {
        case record
        case instantiate
        case launch
        case maxConcurrency
        case distributorIDs
    }

    var kind: Kind
    var commands: [(Command, IncomingCommand)]

    var count: Int { commands.count }

    /// The longest run starting with `first` (which is the item before `index`).
    static func collect(
        startingWith first: Command, _ message: IncomingCommand, in items: [CommandBatchProcessor.Decoded], from index: Int,
        answered: [String: CommandBatchProcessor.StoredResult]
    ) -> CommandRun {
        guard let kind = kind(of: first), (try? first.validate()) != nil else {
            return CommandRun(kind: .launch, commands: [(first, message)])
        }
        var run = CommandRun(kind: kind, commands: [(first, message)])
        var arrays: Set<Int64> = [arrayID(of: first)]
        var ids: Set<String> = [first.envelope.commandID]
        var rows = Self.rows(of: first)
        var next = index
        while next < items.count, run.count < 1000, case .command(let command, let message) = items[next],
            Self.kind(of: command) == kind, (try? command.validate()) != nil,
            answered[command.envelope.commandID] == nil, !ids.contains(command.envelope.commandID),
            rows + Self.rows(of: command) <= Self.maxRows, !arrays.contains(arrayID(of: command))
        {
            arrays.insert(arrayID(of: command))
            ids.insert(command.envelope.commandID)
            rows += Self.rows(of: command)
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

    /// The ids a command's statements carry.
    static func rows(of command: Command) -> Int {
        switch command.operation {
        case .recordArrayBatchNum(let op): op.taskIDs.count
        case .logArrayDistributorID(let op): op.distributorIDs.count
        default: 1
        }
    }

    static func kind(of command: Command) -> Kind? {
        switch command.operation {
        case .recordArrayBatchNum: .record
        case .instantiateArrayBatch: .instantiate
        case .transitionArrayToLaunched: .launch
        case .getArrayMaxConcurrentlyRunning(let op) where op.isGroupable: .maxConcurrency
        case .logArrayDistributorID(let op) where op.byStep == nil: .distributorIDs
        default: nil
        }
    }

    static func arrayID(of command: Command) -> Int64 {
        switch command.operation {
        case .recordArrayBatchNum(let op): op.arrayID
        case .instantiateArrayBatch(let op): op.arrayID
        case .transitionArrayToLaunched(let op): op.arrayID
        case .logArrayDistributorID(let op): op.arrayID
        case .getArrayMaxConcurrentlyRunning(let op):
            if case .arrayID(let id) = op.lookup { id } else { 0 }
        default: 0
        }
    }

    /// Applies the run; one (result, transitions) per command, in order.
    func apply(on connection: PostgresConnection, logger: Logger) async throws
        -> [(Result<ResultPayload, OperationError>, [TransitionGroup])]
    {
        switch kind {
        case .record:
            let operations = commands.map { command -> RecordArrayBatchNum in
                guard case .recordArrayBatchNum(let op) = command.0.operation else { preconditionFailure() }
                return op
            }
            return try await RecordArrayBatchNum.applyGrouped(operations, on: connection, logger: logger).map { result in
                switch result {
                case .success(let out): (.success(.recordArrayBatchNum(batches: out.batches, tasksByStatus: out.tasksByStatus)), out.transitions)
                case .failure(let error): (.failure(error), [])
                }
            }
        case .instantiate:
            let operations = commands.map { command -> InstantiateArrayBatch in
                guard case .instantiateArrayBatch(let op) = command.0.operation else { preconditionFailure() }
                return op
            }
            return Self.batchResults(try await InstantiateArrayBatch.applyGrouped(operations, on: connection, logger: logger))
        case .launch:
            let operations = commands.map { command -> TransitionArrayToLaunched in
                guard case .transitionArrayToLaunched(let op) = command.0.operation else { preconditionFailure() }
                return op
            }
            return Self.batchResults(try await TransitionArrayToLaunched.applyGrouped(operations, on: connection, logger: logger))
        case .distributorIDs:
            let operations = commands.map { command -> LogArrayDistributorID in
                guard case .logArrayDistributorID(let op) = command.0.operation else { preconditionFailure() }
                return op
            }
            return try await LogArrayDistributorID.applyGrouped(operations, on: connection, logger: logger).map {
                ($0.map { .logArrayDistributorID(taskInstances: $0.taskInstanceIDs.count, skipped: $0.skippedIDs) }, [])
            }
        case .maxConcurrency:
            let operations = commands.map { command -> GetArrayMaxConcurrentlyRunning in
                guard case .getArrayMaxConcurrentlyRunning(let op) = command.0.operation else { preconditionFailure() }
                return op
            }
            return try await GetArrayMaxConcurrentlyRunning.applyGrouped(operations, on: connection, logger: logger).map {
                ($0.map { .maxConcurrentlyRunning($0) }, [])
            }
        }
    }
}

extension CommandRun {
    static func batchResults(_ results: [Result<BatchTransitionOutput, OperationError>])
        -> [(Result<ResultPayload, OperationError>, [TransitionGroup])]
    {
        results.map { result in
            switch result {
            case .success(let out):
                (.success(.batchTransition(taskInstances: out.taskInstanceIDs.count, tasks: out.taskIDs.count)), out.transitions)
            case .failure(let error): (.failure(error), [])
            }
        }
    }
}

extension Duration {
    var milliseconds: Double { Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15 }
}
