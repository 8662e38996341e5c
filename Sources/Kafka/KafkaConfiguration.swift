// Kafka — a Swift wrapper over librdkafka (producer, consumer, admin, mock cluster).
// Knows no arrayfsm word and no SQL.
internal import CRdkafka

/// Settings for a Kafka client: a few typed common ones plus any librdkafka property by name.
///
/// Every property is checked with librdkafka's own `rd_kafka_conf_set` when the configuration is
/// created, so a misspelt name or a bad value fails early with librdkafka's error text.
public struct KafkaConfiguration: Sendable {
    /// All librdkafka properties of this configuration, typed ones included.
    public private(set) var properties: [String: String]

    /// Creates a validated configuration.
    /// - Parameters:
    ///   - bootstrapServers: `host:port[,host:port…]` of one or more brokers.
    ///   - clientID: `client.id`, shown in broker logs and metrics.
    ///   - groupID: `group.id`, required by a consumer.
    ///   - properties: any other librdkafka properties; they win over the typed arguments.
    public init(
        bootstrapServers: String,
        clientID: String? = nil,
        groupID: String? = nil,
        properties: [String: String] = [:]
    ) throws(KafkaError) {
        var all = ["bootstrap.servers": bootstrapServers]
        if let clientID { all["client.id"] = clientID }
        if let groupID { all["group.id"] = groupID }
        all.merge(properties) { _, explicit in explicit }
        try Self.validate(all)
        self.properties = all
    }

    /// `bootstrap.servers`.
    public var bootstrapServers: String { properties["bootstrap.servers"] ?? "" }
    /// `client.id`, if set.
    public var clientID: String? { properties["client.id"] }
    /// `group.id`, if set.
    public var groupID: String? { properties["group.id"] }

    /// Returns a copy with one more property, validated by librdkafka.
    public func setting(_ name: String, to value: String) throws(KafkaError) -> KafkaConfiguration {
        try Self.validate([name: value])
        var copy = self
        copy.properties[name] = value
        return copy
    }

    /// Returns a copy with `defaults` added for properties not set explicitly.
    func addingDefaults(_ defaults: [String: String]) -> KafkaConfiguration {
        var copy = self
        copy.properties.merge(defaults) { explicit, _ in explicit }
        return copy
    }

    private static func validate(_ properties: [String: String]) throws(KafkaError) {
        let conf = rd_kafka_conf_new()
        defer { rd_kafka_conf_destroy(conf) }
        try apply(properties, to: conf)
    }

    /// Builds a fresh `rd_kafka_conf_t`; the caller owns it until `rd_kafka_new` takes it.
    func makeNativeConfiguration() throws(KafkaError) -> OpaquePointer {
        let conf = rd_kafka_conf_new()!
        do {
            try Self.apply(properties, to: conf)
        } catch {
            rd_kafka_conf_destroy(conf)
            throw error
        }
        return conf
    }

    private static func apply(_ properties: [String: String], to conf: OpaquePointer?) throws(KafkaError) {
        var errorText = [CChar](repeating: 0, count: 512)
        // Sorted so that validation errors are reported in a stable order.
        for (name, value) in properties.sorted(by: { $0.key < $1.key }) {
            let result = rd_kafka_conf_set(conf, name, value, &errorText, errorText.count)
            if result != RD_KAFKA_CONF_OK {
                throw KafkaError(code: RD_KAFKA_RESP_ERR__INVALID_ARG.rawValue, message: String(nulTerminated: errorText))
            }
        }
    }
}
