// ArrayFSMLoad — load-test tooling: topic dumps (kcat -J), replay, workload generation, seeding.
// Uses Kafka and PostgreSQL directly; never the service.
import Foundation

/// The lines of a file (or standard input), read in chunks: a dump of millions of messages is
/// never held in memory whole.
public struct LineReader: Sequence {
    let handle: FileHandle
    let chunkSize: Int

    public init(handle: FileHandle, chunkSize: Int = 1 << 20) {
        self.handle = handle
        self.chunkSize = chunkSize
    }

    public func makeIterator() -> Iterator {
        Iterator(handle: handle, chunkSize: chunkSize)
    }

    public struct Iterator: IteratorProtocol {
        let handle: FileHandle
        let chunkSize: Int
        var buffer: [UInt8] = []
        var position = 0
        var atEnd = false

        public mutating func next() -> Substring? {
            while true {
                if let newline = buffer[position...].firstIndex(of: 0x0A) {
                    let line = String(decoding: buffer[position..<newline], as: UTF8.self)
                    position = newline + 1
                    return Substring(line)
                }
                if atEnd {
                    guard position < buffer.count else { return nil }
                    let line = String(decoding: buffer[position...], as: UTF8.self)
                    position = buffer.count
                    return Substring(line)
                }
                buffer.removeFirst(position)
                position = 0
                let chunk = (try? handle.read(upToCount: chunkSize)) ?? nil
                if let chunk, !chunk.isEmpty {
                    buffer.append(contentsOf: chunk)
                } else {
                    atEnd = true
                }
            }
        }
    }
}
