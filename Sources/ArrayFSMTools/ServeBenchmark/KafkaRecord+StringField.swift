// ArrayFSMTools: a result field read without parsing the whole event.
import Foundation

extension KafkaRecord {
    /// A top-level string field of a result event, found by scanning the bytes for `"name":"`.
    ///
    /// The benchmark reads every result while serve and PostgreSQL run on the same two cores:
    /// parsing whole results (a 1,000-TI command's result lists 2,000 ids) took a fifth of the
    /// machine's CPU during phase (a) and slowed what it measures. Event fields are written by
    /// arrayfsm's encoder without whitespace, and command ids here contain no escapes.
    public func stringField(_ name: String) -> String? {
        guard let value else { return nil }
        let needle = Array("\"\(name)\":\"".utf8)
        return value.withUnsafeBufferPointer { bytes -> String? in
            guard bytes.count > needle.count else { return nil }
            var index = 0
            while index + needle.count <= bytes.count {
                if bytes[index] == needle[0] && needle.indices.allSatisfy({ bytes[index + $0] == needle[$0] }) {
                    let start = index + needle.count
                    guard let end = bytes[start...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
                    return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
                }
                index += 1
            }
            return nil
        }
    }
}
