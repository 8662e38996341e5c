// Kafka — a Swift wrapper over librdkafka (producer, consumer, admin, mock cluster).
// Knows no arrayfsm word and no SQL.
internal import CRdkafka
internal import Logging

/// State shared by the C callbacks of one client: its logger and statistics handler.
class ClientContext: @unchecked Sendable {
    let logger: Logger
    let statisticsHandler: (@Sendable (KafkaStatistics) -> Void)?

    init(logger: Logger, statisticsHandler: (@Sendable (KafkaStatistics) -> Void)?) {
        self.logger = logger
        self.statisticsHandler = statisticsHandler
    }

    static func from(_ client: OpaquePointer?) -> ClientContext? {
        guard let client, let opaque = rd_kafka_opaque(client) else { return nil }
        return Unmanaged<ClientContext>.fromOpaque(opaque).takeUnretainedValue()
    }
}

// C callbacks: free functions with no actor isolation, because librdkafka calls them on its own threads.

func kafkaLogCallback(_ client: OpaquePointer?, _ level: Int32, _ facility: UnsafePointer<CChar>?,
                      _ text: UnsafePointer<CChar>?) {
    guard let context = ClientContext.from(client) else { return }
    let logLevel: Logger.Level = switch level {
    case ...3: .error
    case 4: .warning
    case 5, 6: .info
    default: .debug
    }
    context.logger.log(level: logLevel, "\(facility.map { String(cString: $0) } ?? ""): \(text.map { String(cString: $0) } ?? "")")
}

func kafkaErrorCallback(_ client: OpaquePointer?, _ code: Int32, _ reason: UnsafePointer<CChar>?,
                        _ opaque: UnsafeMutableRawPointer?) {
    guard let opaque else { return }
    let context = Unmanaged<ClientContext>.fromOpaque(opaque).takeUnretainedValue()
    let error = rd_kafka_resp_err_t(code)
    // Transport errors (broker down, all brokers down) are retried by librdkafka itself.
    let level: Logger.Level = error == RD_KAFKA_RESP_ERR__FATAL ? .critical
        : (error == RD_KAFKA_RESP_ERR__TRANSPORT || error == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) ? .debug : .warning
    context.logger.log(level: level, "librdkafka error \(String(cString: rd_kafka_err2name(error))): \(reason.map { String(cString: $0) } ?? "")")
}

func kafkaStatisticsCallback(_ client: OpaquePointer?, _ json: UnsafeMutablePointer<CChar>?, _ length: Int,
                             _ opaque: UnsafeMutableRawPointer?) -> Int32 {
    guard let opaque, let json else { return 0 }
    let context = Unmanaged<ClientContext>.fromOpaque(opaque).takeUnretainedValue()
    context.statisticsHandler?(KafkaStatistics(json: String(cString: json)))
    return 0  // 0: librdkafka frees the JSON buffer.
}
