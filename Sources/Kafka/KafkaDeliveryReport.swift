/// The outcome of delivering a group of messages: how many the broker acknowledged and why others failed.
public struct KafkaDeliveryReport: Sendable {
    /// One message that was not delivered: its position in the group sent, and why.
    public struct Failure: Sendable {
        /// The message's index in the array handed to `send` / `enqueue`.
        public var index: Int
        public var error: KafkaError

        public init(index: Int, error: KafkaError) {
            self.index = index
            self.error = error
        }
    }

    /// Messages acknowledged by the broker.
    public var delivered: Int
    /// The messages not delivered, in no particular order.
    public var failed: [Failure]

    public init(delivered: Int, failed: [Failure]) {
        self.delivered = delivered
        self.failed = failed
    }

    /// One error per message that was not delivered.
    public var failures: [KafkaError] { failed.map(\.error) }

    /// Whether every message was delivered.
    public var isComplete: Bool { failed.isEmpty }
}
