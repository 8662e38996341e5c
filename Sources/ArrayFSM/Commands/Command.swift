// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
import Foundation

/// A decoded, typed command: the operation to apply and the envelope fields that travel with it.
public struct Command: Sendable {
    /// The operation the command asks for.
    public enum Operation: Sendable {
        case addArray(AddArray)
        case recordArrayBatchNum(RecordArrayBatchNum)
        case transitionArrayToLaunched(TransitionArrayToLaunched)
        case transitionToKilled(TransitionToKilled)
        case logArrayDistributorID(LogArrayDistributorID)
        case getArrayMaxConcurrentlyRunning(GetArrayMaxConcurrentlyRunning)
        case instantiateArrayBatch(InstantiateArrayBatch)
        case logArraySubmitFailed(LogArraySubmitFailed)
    }

    public var envelope: CommandEnvelope
    public var operation: Operation

    public init(envelope: CommandEnvelope, operation: Operation) {
        self.envelope = envelope
        self.operation = operation
    }

    /// Checks the operation's input without touching the database.
    public func validate() throws(OperationError) {
        switch operation {
        case .addArray(let op): try op.validate()
        case .recordArrayBatchNum(let op): try op.validate()
        case .transitionArrayToLaunched(let op): try op.validate()
        case .transitionToKilled(let op): try op.validate()
        case .logArrayDistributorID(let op): try op.validate()
        case .getArrayMaxConcurrentlyRunning(let op): try op.validate()
        case .instantiateArrayBatch(let op): try op.validate()
        case .logArraySubmitFailed(let op): try op.validate()
        }
    }
}
