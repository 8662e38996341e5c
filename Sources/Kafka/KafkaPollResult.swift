/// What one `KafkaConsumer.poll` produced: a batch of messages and any rebalance events.
public struct KafkaPollResult: Sendable {
    /// Messages in the order librdkafka delivered them (ordered within each partition).
    public var messages: [KafkaMessage]
    /// Assignment changes seen during this poll. A `.revoked` event is always the last one.
    public var rebalanceEvents: [KafkaRebalanceEvent]

    /// Creates a result.
    public init(messages: [KafkaMessage] = [], rebalanceEvents: [KafkaRebalanceEvent] = []) {
        self.messages = messages
        self.rebalanceEvents = rebalanceEvents
    }
}
