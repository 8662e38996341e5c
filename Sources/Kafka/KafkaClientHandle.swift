// Kafka — a Swift wrapper over librdkafka (producer, consumer, admin, mock cluster).
// Knows no arrayfsm word and no SQL.
internal import CRdkafka
internal import Logging

/// Owns one `rd_kafka_t` (thread-safe in librdkafka) and the context object its C callbacks
/// reach through the conf opaque; the context is released only after `rd_kafka_destroy`, so a
/// callback fired during destruction never sees freed memory.
final class KafkaClientHandle: @unchecked Sendable {
    let pointer: OpaquePointer
    private let context: ClientContext

    init(kind: rd_kafka_type_t, configuration: KafkaConfiguration, context: ClientContext,
         configure: (OpaquePointer) -> Void) throws(KafkaError) {
        let conf = try configuration.makeNativeConfiguration()
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(context).toOpaque())
        rd_kafka_conf_set_log_cb(conf, kafkaLogCallback)
        rd_kafka_conf_set_error_cb(conf, kafkaErrorCallback)
        if configuration.properties["statistics.interval.ms"].map({ $0 != "0" }) ?? false {
            rd_kafka_conf_set_stats_cb(conf, kafkaStatisticsCallback)
        }
        configure(conf)
        var errorText = [CChar](repeating: 0, count: 512)
        guard let client = rd_kafka_new(kind, conf, &errorText, errorText.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(code: RD_KAFKA_RESP_ERR__INVALID_ARG.rawValue, message: String(nulTerminated: errorText))
        }
        self.pointer = client
        self.context = context
    }

    deinit {
        rd_kafka_destroy(pointer)
        _ = context
    }
}
