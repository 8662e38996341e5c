/// A change of this consumer's partition assignment, returned by `KafkaConsumer.poll`.
public enum KafkaRebalanceEvent: Sendable, Hashable {
    /// These partitions are now assigned; messages from them follow.
    case assigned([KafkaTopicPartition])
    /// These partitions are being taken away. They stay assigned until the next `poll` (or
    /// `close`): finish the in-flight messages and store their offsets first; the next poll
    /// commits the stored offsets, then releases the partitions.
    case revoked([KafkaTopicPartition])
    /// These partitions were lost (e.g. session timeout) and already belong to another member:
    /// offsets can no longer be stored for them; expect their messages to be redelivered elsewhere.
    case lost([KafkaTopicPartition])
}
