/// Reads the one large member of a command's payload straight from the message bytes: the
/// `distributor_ids` map of `log_array_distributor_id` and the `task_ids` of
/// `record_array_batch_num`.
///
/// `JSONDecoder` spends about 0.9 ms turning a 1,000-entry map into `[String: String]`, and
/// 0.3–0.5 ms on 1,000 task ids — most of decoding such a command, while the database waits for
/// the batch — and this reads the same values in a small fraction of that. It reads only what it
/// fully understands: strings without escapes, ids in canonical decimal, no repeated keys (in the
/// map, or of `payload` or the member). For anything else it returns nil and the `Codable` path
/// decodes the member, and reports what is wrong with it, as it always did.
///
/// It does not validate the rest of the document: the `Codable` path decodes the message with
/// the member's bytes replaced by an empty object or array (``spliced(_:removing:with:)``). What it
/// read is valid JSON, so the message is valid exactly when the spliced one is, and a message that
/// is not JSON fails there.
struct PayloadReader {
    private let bytes: [UInt8]
    private var index = 0

    private init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// What was read ahead, and where its value lies in the message.
    enum ReadAhead: Equatable {
        /// `payload.distributor_ids` of a `log_array_distributor_id` command; its value is `{` … `}`.
        case distributorIDs([Int64: String], Range<Int>)
        /// `payload.task_ids` of a `record_array_batch_num` command; its value is `[` … `]`.
        case taskIDs([Int64], Range<Int>)
    }

    /// Where a message's top-level `type` string and `payload` object lie: found by one pass over
    /// the top level, which the digest and the read-ahead share.
    struct TopLevel {
        /// The bytes of `type` between its quotes.
        var type: ArraySlice<UInt8>
        /// The `payload` object, `{` … `}`, exactly as produced.
        var payload: Range<Int>
    }

    /// The top level of a message that plainly has one `type` string and one `payload` object
    /// (keys without escapes); nil otherwise.
    ///
    /// One pass finds both: a search for the type's name first would run over the whole payload
    /// whenever `type` comes after it (as with sorted keys).
    static func topLevel(_ bytes: [UInt8]) -> TopLevel? {
        var reader = PayloadReader(bytes)
        return reader.typeAndPayload().map { TopLevel(type: $0.0, payload: $0.1) }
    }

    /// The large member of a command whose `type` says it has one; nil when the message does not
    /// plainly hold one.
    static func readAhead(_ bytes: [UInt8], _ topLevel: TopLevel) -> ReadAhead? {
        var reader = PayloadReader(bytes)
        reader.index = topLevel.payload.lowerBound
        if topLevel.type.elementsEqual("log_array_distributor_id".utf8) {
            return reader.member("distributor_ids") { $0.distributorIDs() }.map { .distributorIDs($0.0, $0.1) }
        }
        if topLevel.type.elementsEqual("record_array_batch_num".utf8) {
            return reader.member("task_ids") { $0.ids() }.map { .taskIDs($0.0, $0.1) }
        }
        return nil
    }

    /// ``readAhead(_:_:)`` of a message whose top level is not yet read.
    static func readAhead(_ bytes: [UInt8]) -> ReadAhead? {
        topLevel(bytes).flatMap { readAhead(bytes, $0) }
    }

    /// `bytes` with `range` replaced by `replacement` (`{}` or `[]`): what `JSONDecoder` needs to
    /// parse once the member is read (parsing its 1,000 entries again cost as much as reading them).
    static func spliced(_ bytes: [UInt8], removing range: Range<Int>, with replacement: String) -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(bytes.count - range.count + replacement.utf8.count)
        result += bytes[..<range.lowerBound]
        result += replacement.utf8
        result += bytes[range.upperBound...]
        return result
    }

    // MARK: - Structure

    /// The top-level `type` (its bytes) and where the `payload` value starts; nil unless both
    /// appear once, the type as a plain string and the payload as an object.
    private mutating func typeAndPayload() -> (ArraySlice<UInt8>, Range<Int>)? {
        var type: ArraySlice<UInt8>?
        var payload: Range<Int>?
        let complete = members { reader, key in
            if key.elementsEqual("type".utf8) {
                guard type == nil, let value = reader.plainString() else { return false }
                type = value
                return true
            }
            if key.elementsEqual("payload".utf8) {
                guard payload == nil, reader.peek() == UInt8(ascii: "{") else { return false }
                let start = reader.index
                guard reader.skipValue() else { return false }
                payload = start..<reader.index
                return true
            }
            return reader.skipValue()
        }
        guard complete, let type, let payload else { return nil }
        return (type, payload)
    }

    /// The member `name` of the object that starts here, read by `read`, and its byte range; nil
    /// unless it appears once and `read` takes it.
    private mutating func member<Value>(_ name: String, _ read: (inout PayloadReader) -> Value?) -> (Value, Range<Int>)? {
        var value: Value?
        var range: Range<Int>?
        let complete = members { reader, key in
            guard key.elementsEqual(name.utf8) else { return reader.skipValue() }
            guard range == nil else { return false }
            let start = reader.index
            value = read(&reader)
            range = start..<reader.index
            return value != nil
        }
        guard complete, let value, let range else { return nil }
        return (value, range)
    }

    /// Walks an object's members, calling `body` with each key (positioned at its value); false
    /// from `body`, or anything unexpected, stops the walk and returns false.
    private mutating func members(_ body: (inout PayloadReader, ArraySlice<UInt8>) -> Bool) -> Bool {
        skipWhitespace()
        guard take(UInt8(ascii: "{")) else { return false }
        skipWhitespace()
        if take(UInt8(ascii: "}")) { return true }
        while true {
            skipWhitespace()
            guard let key = plainString() else { return false }
            skipWhitespace()
            guard take(UInt8(ascii: ":")) else { return false }
            skipWhitespace()
            guard body(&self, key) else { return false }
            skipWhitespace()
            if take(UInt8(ascii: ",")) { continue }
            return take(UInt8(ascii: "}"))
        }
    }

    /// `{"123": "value", …}` with canonical decimal keys and plain string values.
    private mutating func distributorIDs() -> [Int64: String]? {
        var map: [Int64: String] = [:]
        let complete = members { reader, key in
            guard let id = Self.canonicalID(key), let raw = reader.plainString(),
                  let value = String(validating: raw, as: UTF8.self), map.updateValue(value, forKey: id) == nil
            else { return false }
            return true
        }
        return complete ? map : nil
    }

    /// `[1, 2, 3]` of canonical decimal ids.
    private mutating func ids() -> [Int64]? {
        guard take(UInt8(ascii: "[")) else { return nil }
        var ids: [Int64] = []
        skipWhitespace()
        if take(UInt8(ascii: "]")) { return ids }
        while true {
            skipWhitespace()
            let start = index
            while let byte = peek(), byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") { index += 1 }
            guard let id = Self.canonicalID(bytes[start..<index]) else { return nil }
            ids.append(id)
            skipWhitespace()
            if take(UInt8(ascii: ",")) { continue }
            return take(UInt8(ascii: "]")) ? ids : nil
        }
    }

    // MARK: - Tokens

    private func peek() -> UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func take(_ byte: UInt8) -> Bool {
        guard peek() == byte else { return false }
        index += 1
        return true
    }

    private mutating func skipWhitespace() {
        while let byte = peek(), byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { index += 1 }
    }

    /// A string without escapes or control characters: its bytes between the quotes.
    private mutating func plainString() -> ArraySlice<UInt8>? {
        guard take(UInt8(ascii: "\"")) else { return nil }
        let start = index
        while let byte = peek() {
            if byte == UInt8(ascii: "\"") {
                index += 1
                return bytes[start..<(index - 1)]
            }
            guard byte != UInt8(ascii: "\\"), byte >= 0x20 else { return nil }
            index += 1
        }
        return nil
    }

    /// Skips any value (string, number, literal, object, array); false on a malformed one.
    private mutating func skipValue() -> Bool {
        guard let first = peek() else { return false }
        switch first {
        case UInt8(ascii: "\""):
            index += 1
            while let byte = peek() {
                index += 1
                if byte == UInt8(ascii: "\\") {
                    index += 1
                } else if byte == UInt8(ascii: "\"") {
                    return true
                }
            }
            return false
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            // Brackets nest; strings inside may hold brackets and escaped quotes.
            var depth = 0
            while let byte = peek() {
                switch byte {
                case UInt8(ascii: "\""):
                    guard skipValue() else { return false }
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                default:
                    break
                }
                index += 1
                if depth == 0 { return true }
            }
            return false
        default:
            // A number or a literal: up to the next delimiter.
            let start = index
            while let byte = peek(), byte != UInt8(ascii: ","), byte != UInt8(ascii: "}"), byte != UInt8(ascii: "]"),
                  byte != 0x20, byte != 0x0A, byte != 0x0D, byte != 0x09 {
                index += 1
            }
            return index > start
        }
    }

    /// "123" → 123; nil unless plain decimal digits without a leading zero, within Int64.
    static func canonicalID(_ key: ArraySlice<UInt8>) -> Int64? {
        guard (1...18).contains(key.count), key.first != UInt8(ascii: "0") || key.count == 1 else { return nil }
        var value: Int64 = 0
        for byte in key {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int64(byte - UInt8(ascii: "0"))
        }
        return value
    }
}
