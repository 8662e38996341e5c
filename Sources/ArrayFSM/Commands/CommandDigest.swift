/// What makes two messages with one `command_id` the same command (contract: "Repeats"): the
/// command type, the message key, and the bytes of the `payload` object exactly as produced.
///
/// A re-production of the same bytes, or a replay of a dump, is the same command; a payload
/// encoded differently (other values, other member order, other spacing) is another command,
/// and re-using the id for it is a conflict. Envelope fields that say how to deliver the answer
/// (`reply_to`, `issued_at`, `version`) are not part of it.
public struct CommandDigest: Sendable, Hashable, CustomStringConvertible {
    /// The SHA-256 of the type, the key and the payload bytes (32 bytes).
    public var bytes: [UInt8]

    public init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// The digest of a message; a message whose payload cannot be told apart plainly (escaped
    /// top-level keys, no `payload` object) is digested whole.
    public init(type: String, key: [UInt8]?, message: [UInt8]) {
        self.init(type: type, key: key, message: message, payload: PayloadReader.topLevel(message)?.payload)
    }

    /// The digest of a message whose `payload` object lies at `payload` (nil: digest it whole).
    init(type: String, key: [UInt8]?, message: [UInt8], payload: Range<Int>?) {
        var hash = SHA256()
        hash.update(Array((payload == nil ? "arrayfsm-command-v1-message" : "arrayfsm-command-v1-payload").utf8))
        hash.update([0])
        hash.update(Array(type.utf8))
        hash.update([0])
        if let key {
            let count = UInt32(truncatingIfNeeded: key.count)
            hash.update([1, UInt8(count >> 24), UInt8(truncatingIfNeeded: count >> 16), UInt8(truncatingIfNeeded: count >> 8),
                         UInt8(truncatingIfNeeded: count)])
            hash.update(key)
        } else {
            hash.update([0])
        }
        if let payload { hash.update(message[payload]) } else { hash.update(message) }
        bytes = hash.finalize()
    }

    /// Lowercase hex.
    public var description: String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes { text += [digits[Int(byte >> 4)], digits[Int(byte & 0xF)]] }
        return String(decoding: text, as: UTF8.self)
    }
}
