/// Writes JSON straight into bytes, for the events the service publishes. Each `member` must
/// write exactly one value.
///
/// Why not `JSONEncoder`: events carry id lists of up to 1,000s of ids, and `JSONEncoder` spends
/// ~0.28 ms on a transition event of 1,000 ids (generic containers, one boxed value per id) where
/// this takes ~0.02 ms; in `bench-serve`'s lifecycle that was ~0.2 s of 2.4 s, on the path that
/// holds a transaction open. The `Encodable` conformances stay as the reference: a test checks that
/// both produce the same JSON value.
struct JSONBytes: Sendable {
    private(set) var bytes: [UInt8] = []
    /// At the start of a container or right after a key: the next value needs no comma.
    private var fresh = true

    init(capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
    }

    /// `{ … }`; `members` adds the members with the `member` functions.
    mutating func object(_ members: (inout JSONBytes) -> Void) {
        container(open: "{", close: "}", members)
    }

    /// `[ … ]`; `elements` adds the values.
    mutating func array(_ elements: (inout JSONBytes) -> Void) {
        container(open: "[", close: "]", elements)
    }

    private mutating func container(open: Unicode.Scalar, close: Unicode.Scalar, _ contents: (inout JSONBytes) -> Void) {
        separate()
        bytes.append(UInt8(ascii: open))
        fresh = true
        contents(&self)
        bytes.append(UInt8(ascii: close))
        fresh = false
    }

    /// `"key": value`, the value written by `value`.
    mutating func member(_ key: String, _ value: (inout JSONBytes) -> Void) {
        separate()
        writeString(key)
        bytes.append(UInt8(ascii: ":"))
        fresh = true
        value(&self)
        fresh = false
    }

    mutating func member(_ key: String, _ text: String?) { member(key) { $0.string(text) } }
    mutating func member<Integer: SignedInteger & FixedWidthInteger>(_ key: String, _ number: Integer?) { member(key) { $0.integer(number) } }
    mutating func member(_ key: String, _ number: Double) { member(key) { $0.double(number) } }
    mutating func member(_ key: String, _ flag: Bool) { member(key) { $0.bool(flag) } }
    mutating func member(_ key: String, ids: [Int64]) { member(key) { $0.integers(ids) } }

    mutating func string(_ text: String?) {
        separate()
        guard let text else { return appendLiteral("null") }
        writeString(text)
    }

    mutating func integer<Integer: SignedInteger & FixedWidthInteger>(_ number: Integer?) {
        separate()
        guard let number else { return appendLiteral("null") }
        appendDecimal(Int64(number))
    }

    /// A finite number (durations); not-a-number and infinities, which JSON lacks, become null.
    mutating func double(_ number: Double) {
        separate()
        guard number.isFinite else { return appendLiteral("null") }
        bytes += "\(number)".utf8
    }

    mutating func bool(_ flag: Bool) {
        separate()
        appendLiteral(flag ? "true" : "false")
    }

    /// `[1,2,3]`: the hot path, id lists.
    mutating func integers(_ numbers: [Int64]) {
        separate()
        bytes.append(UInt8(ascii: "["))
        for (index, number) in numbers.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            appendDecimal(number)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    private mutating func separate() {
        if !fresh { bytes.append(UInt8(ascii: ",")) }
        fresh = false
    }

    private mutating func appendLiteral(_ literal: StaticString) {
        literal.withUTF8Buffer { bytes += $0 }
    }

    private mutating func appendDecimal(_ number: Int64) {
        if number < 0 {
            bytes.append(UInt8(ascii: "-"))
        }
        var magnitude = number.magnitude
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { buffer in
            repeat {
                buffer[19 - count] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                count += 1
            } while magnitude > 0
            bytes += buffer[(20 - count)...]
        }
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// A JSON string: `"` and `\` escaped, control characters as `\n`, `\t`, … or `\u00XX`;
    /// everything else as its UTF-8 bytes.
    private mutating func writeString(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): bytes += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x0A: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0..<0x20:
                bytes += [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), Self.hex[Int(byte >> 4)], Self.hex[Int(byte & 0xF)]]
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

extension TransitionEvent {
    /// The event as JSON (keys sorted, as `JSONEncoder` with `.sortedKeys` writes them).
    public var jsonBytes: [UInt8] {
        var json = JSONBytes(capacity: 256 + ids.count * 9)
        json.object { o in
            o.member("array_id", arrayID)
            o.member("at", at)
            o.member("batch_number", batchNumber)  // explicit null: a task transition has no batch
            o.member("command_id", commandID)
            o.member("count", count)
            o.member("entity", entity)
            o.member("event_id", eventID)
            o.member("from", from)
            o.member("ids", ids: ids)
            if let part { o.member("part", part) }
            if let parts { o.member("parts", parts) }
            o.member("to", to)
        }
        return json.bytes
    }
}

extension ResultEvent {
    /// The event as JSON (keys sorted; absent optionals left out, as `JSONEncoder` does).
    public var jsonBytes: [UInt8] {
        var json = JSONBytes(capacity: 256 + (result?.idCount ?? 0) * 9)
        json.object { o in
            o.member("command_id", commandID)
            o.member("duration_ms", durationMS)
            if let error {
                o.member("error") { $0.object { e in
                    e.member("code", error.code)
                    e.member("message", error.message)
                } }
            }
            o.member("event_id", eventID)
            if let part { o.member("part", part) }
            if let parts { o.member("parts", parts) }
            o.member("processed_at", processedAt)
            if let result { o.member("result") { result.write(to: &$0) } }
            o.member("status", status.rawValue)
            o.member("type", type)
        }
        return json.bytes
    }
}

extension ResultPayload {
    func write(to json: inout JSONBytes) {
        json.object { o in
            switch self {
            case .addArray(let output):
                o.member("array_id", output.arrayID)
                o.member("created", output.created)
            case .recordArrayBatchNum(let batches, let tasksByStatus):
                o.member("batches") { $0.array { list in
                    for batch in batches {
                        list.object { item in
                            item.member("batch_number", batch.batchNumber)
                            item.member("task_instance_ids", ids: batch.taskInstanceIDs)
                        }
                    }
                } }
                o.member("tasks_by_status") { $0.object { statuses in
                    for status in tasksByStatus.keys.sorted() { statuses.member(status, ids: tasksByStatus[status]!) }
                } }
            case .batchTransition(let taskInstances, let tasks):
                o.member("task_instances", taskInstances)
                o.member("tasks", tasks)
            case .logArrayDistributorID(let taskInstances, let skipped):
                if !skipped.isEmpty { o.member("skipped_task_instance_ids", ids: skipped) }
                o.member("task_instances", taskInstances)
            case .maxConcurrentlyRunning(let output):
                o.member("array_id", output.arrayID)
                o.member("max_concurrently_running", output.maxConcurrentlyRunning)
            case .taskInstanceBatches(let batches):
                o.member("task_instance_batches") { $0.array { list in
                    for batch in batches {
                        list.array { item in
                            item.integer(batch.arrayID)
                            item.string(batch.arrayName)
                            item.integer(batch.batchNumber)
                            item.integer(batch.taskResourcesID)
                            item.integers(batch.taskInstanceIDs)
                        }
                    }
                } }
            }
        }
    }
}
