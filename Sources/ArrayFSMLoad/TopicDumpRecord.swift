// ArrayFSMLoad — load-test tooling: topic dumps (kcat -J), replay, workload generation, seeding.
// Uses Kafka and PostgreSQL directly; never the service.
import Foundation

/// One message of a topic dump: a line of JSON in the format `kcat -C -J` prints.
///
/// `key` and `payload` are strings when they are UTF-8; bytes that are not are written as
/// `key_base64` / `payload_base64` instead (an arrayfsm addition, so a dump round-trips any message
/// byte for byte; kcat ignores the extra fields). `headers` is flat: name, value, name, value.
public struct TopicDumpRecord: Sendable, Hashable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    /// Milliseconds since 1970 (the message timestamp), if known.
    public var timestamp: Int64?
    public var key: [UInt8]?
    public var payload: [UInt8]?
    public var headers: [(name: String, value: [UInt8]?)]

    public init(topic: String, partition: Int32, offset: Int64, timestamp: Int64?, key: [UInt8]?, payload: [UInt8]?,
                headers: [(name: String, value: [UInt8]?)] = []) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.payload = payload
        self.headers = headers
    }

    public static func == (a: TopicDumpRecord, b: TopicDumpRecord) -> Bool {
        a.topic == b.topic && a.partition == b.partition && a.offset == b.offset && a.timestamp == b.timestamp
            && a.key == b.key && a.payload == b.payload
            && a.headers.map(\.name) == b.headers.map(\.name) && a.headers.map(\.value) == b.headers.map(\.value)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(topic)
        hasher.combine(partition)
        hasher.combine(offset)
    }

    /// A dump line that cannot be read.
    public struct ParseError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Reads one dump line.
    public init(line: Substring) throws {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw ParseError(description: "not a JSON object")
        }
        topic = object["topic"] as? String ?? ""
        partition = (object["partition"] as? NSNumber)?.int32Value ?? 0
        offset = (object["offset"] as? NSNumber)?.int64Value ?? -1
        timestamp = (object["ts"] as? NSNumber)?.int64Value
        key = try Self.bytes(object, "key")
        payload = try Self.bytes(object, "payload")
        var headers: [(name: String, value: [UInt8]?)] = []
        if let flat = object["headers"] as? [Any] {
            guard flat.count % 2 == 0 else { throw ParseError(description: "headers must alternate name and value") }
            for index in stride(from: 0, to: flat.count, by: 2) {
                guard let name = flat[index] as? String else { throw ParseError(description: "a header name is not a string") }
                headers.append((name, (flat[index + 1] as? String).map { Array($0.utf8) }))
            }
        }
        self.headers = headers
    }

    static func bytes(_ object: [String: Any], _ field: String) throws -> [UInt8]? {
        if let encoded = object[field + "_base64"] as? String {
            guard let data = Data(base64Encoded: encoded) else { throw ParseError(description: "\(field)_base64 is not base64") }
            return Array(data)
        }
        return (object[field] as? String).map { Array($0.utf8) }
    }

    /// The dump line (without the newline).
    public func line() -> String {
        var object: [String: Any] = ["topic": topic, "partition": partition, "offset": offset, "tstype": "create", "broker": -1]
        if let timestamp { object["ts"] = timestamp }
        for (field, value) in [("key", key), ("payload", payload)] {
            guard let value else {
                object[field] = NSNull()
                continue
            }
            if let text = String(validating: value, as: UTF8.self) {
                object[field] = text
            } else {
                object[field] = NSNull()
                object[field + "_base64"] = Data(value).base64EncodedString()
            }
        }
        if !headers.isEmpty {
            object["headers"] = headers.flatMap { header -> [Any] in
                [header.name, header.value.map { String(decoding: $0, as: UTF8.self) } as Any? ?? NSNull()]
            }
        }
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }
}
