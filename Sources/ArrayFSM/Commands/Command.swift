// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.

/// A decoded, typed command: the operation to apply and the envelope fields that travel with it.
public struct Command: Sendable {
    public var envelope: CommandEnvelope
    /// The operation the command asks for.
    public var operation: any CommandOperation

    public init(envelope: CommandEnvelope, operation: any CommandOperation) {
        self.envelope = envelope
        self.operation = operation
    }

    /// Checks the operation's input without touching the database.
    public func validate() throws(OperationError) {
        try operation.validate()
    }
}
