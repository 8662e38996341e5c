// Kafka — a Swift wrapper over librdkafka (producer, consumer, admin, mock cluster).
// Knows no arrayfsm word and no SQL.
internal import CRdkafka

/// An error reported by librdkafka or by this wrapper, with librdkafka's own code and text.
public struct KafkaError: Error, Sendable, Hashable, CustomStringConvertible {
    /// librdkafka's `rd_kafka_resp_err_t` value (negative for client-side errors, positive for broker errors).
    public let code: Int32
    /// Human-readable text, usually librdkafka's own error string.
    public let message: String
    /// The client instance is unusable after this error and must be recreated.
    public let isFatal: Bool
    /// The failed operation may succeed if tried again.
    public let isRetriable: Bool

    /// Creates an error from its parts.
    public init(code: Int32, message: String, isFatal: Bool = false, isRetriable: Bool = false) {
        self.code = code
        self.message = message
        self.isFatal = isFatal
        self.isRetriable = isRetriable
    }

    /// librdkafka's symbolic name for the code, such as `_QUEUE_FULL` or `TOPIC_ALREADY_EXISTS`.
    public var name: String {
        String(cString: rd_kafka_err2name(rd_kafka_resp_err_t(code)))
    }

    public var description: String {
        "KafkaError(\(name): \(message)\(isFatal ? ", fatal" : "")\(isRetriable ? ", retriable" : ""))"
    }

    init(_ code: rd_kafka_resp_err_t, message: String? = nil) {
        self.init(
            code: code.rawValue,
            message: message ?? String(cString: rd_kafka_err2str(code)),
            isFatal: code == RD_KAFKA_RESP_ERR__FATAL,
            isRetriable: false
        )
    }

    /// Takes ownership of an `rd_kafka_error_t` and destroys it.
    init(consuming error: OpaquePointer) {
        defer { rd_kafka_error_destroy(error) }
        self.init(
            code: rd_kafka_error_code(error).rawValue,
            message: String(cString: rd_kafka_error_string(error)),
            isFatal: rd_kafka_error_is_fatal(error) != 0,
            isRetriable: rd_kafka_error_is_retriable(error) != 0
        )
    }

    /// The client's fatal error, if one was raised (`rd_kafka_fatal_error`).
    static func fatal(of client: OpaquePointer) -> KafkaError? {
        var buffer = [CChar](repeating: 0, count: 512)
        let code = rd_kafka_fatal_error(client, &buffer, buffer.count)
        guard code != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        return KafkaError(code: code.rawValue, message: String(nulTerminated: buffer), isFatal: true)
    }

    static func check(_ code: rd_kafka_resp_err_t) throws(KafkaError) {
        if code != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(code) }
    }

    /// Raised by the wrapper when the client was already closed.
    static let closed = KafkaError(code: RD_KAFKA_RESP_ERR__STATE.rawValue, message: "the client is closed")
}

extension KafkaError {
    /// The code librdkafka uses for "the topic already exists" (broker error 36).
    public static let topicAlreadyExistsCode: Int32 = RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS.rawValue
    /// The code for a call made in the wrong state, e.g. storing an offset for a revoked partition.
    public static let stateCode: Int32 = RD_KAFKA_RESP_ERR__STATE.rawValue
    /// The fatal error an idempotent producer with `enable.gapless.guarantee=true` raises instead
    /// of letting later messages of a partition through after one of its batches failed for good.
    public static let gaplessGuaranteeCode: Int32 = RD_KAFKA_RESP_ERR__GAPLESS_GUARANTEE.rawValue

    /// Whether this delivery failure only follows from the producer failing fatally (purged,
    /// failed along with it, refused as out of sequence after the gap) rather than from the
    /// message itself.
    public var isCollateralOfFatalError: Bool {
        [RD_KAFKA_RESP_ERR__FATAL, RD_KAFKA_RESP_ERR__PURGE_QUEUE, RD_KAFKA_RESP_ERR__PURGE_INFLIGHT,
         RD_KAFKA_RESP_ERR__GAPLESS_GUARANTEE, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER].contains { $0.rawValue == code }
    }

    /// The code for an argument librdkafka refused before sending anything (e.g. a replication factor below -1).
    public static let invalidArgumentCode: Int32 = RD_KAFKA_RESP_ERR__INVALID_ARG.rawValue
}

extension String {
    /// Decodes a C error buffer that librdkafka filled and NUL-terminated.
    init(nulTerminated buffer: [CChar]) {
        self.init(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
