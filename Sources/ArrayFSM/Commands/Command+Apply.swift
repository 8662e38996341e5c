// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
import Logging
import PostgresNIO

extension Command.Operation {
    /// Applies the operation in the caller's open transaction; returns the result payload and
    /// the transitions it made.
    public func apply(on connection: PostgresConnection, logger: Logger) async throws -> (ResultPayload, [TransitionGroup]) {
        switch self {
        case .addArray(let op):
            return (.addArray(try await op.apply(on: connection, logger: logger)), [])
        case .recordArrayBatchNum(let op):
            let out = try await op.apply(on: connection, logger: logger)
            return (.recordArrayBatchNum(batches: out.batches, tasksByStatus: out.tasksByStatus), out.transitions)
        case .transitionArrayToLaunched(let op):
            return Self.batch(try await op.apply(on: connection, logger: logger))
        case .transitionToKilled(let op):
            return Self.batch(try await op.apply(on: connection, logger: logger))
        case .instantiateArrayBatch(let op):
            return Self.batch(try await op.apply(on: connection, logger: logger))
        case .logArraySubmitFailed(let op):
            return Self.batch(try await op.apply(on: connection, logger: logger))
        case .logArrayDistributorID(let op):
            let out = try await op.apply(on: connection, logger: logger)
            return (.logArrayDistributorID(taskInstances: out.taskInstanceIDs.count, skipped: out.skippedIDs), [])
        case .getArrayMaxConcurrentlyRunning(let op):
            return (.maxConcurrentlyRunning(try await op.apply(on: connection, logger: logger)), [])
        }
    }

    private static func batch(_ out: BatchTransitionOutput) -> (ResultPayload, [TransitionGroup]) {
        (.batchTransition(taskInstances: out.taskInstanceIDs.count, tasks: out.taskIDs.count), out.transitions)
    }
}
