/// The outcome of delivering a group of messages: how many the broker acknowledged and why others failed.
public struct KafkaDeliveryReport: Sendable {
    /// Messages acknowledged by the broker.
    public var delivered: Int
    /// One error per message that was not delivered.
    public var failures: [KafkaError]

    /// Whether every message was delivered.
    public var isComplete: Bool { failures.isEmpty }
}
