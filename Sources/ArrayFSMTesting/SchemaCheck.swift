// ArrayFSMTesting — what only tests import: test databases, row readers, schema checks, a test CA.
import ArrayFSMTools
import Foundation

/// Validates produced messages against `schemas/v1` with `scripts/validate-messages` (Python's jsonschema).
public enum SchemaCheck {
    /// The repository root, found from this source file's path.
    public static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    /// Throws with the validator's report if any record's value is not a valid `kind` message.
    public static func validate(_ kind: String, _ records: [KafkaRecord]) async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("arrayfsm-\(kind)-\(UUID().uuidString).jsonl")
        let lines = records.compactMap { $0.value.map { String(decoding: $0, as: UTF8.self) } }.joined(separator: "\n") + "\n"
        try lines.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let child = try ChildProcess(["/usr/bin/env", "python3", repositoryRoot + "/scripts/validate-messages", kind, file.path])
        defer { try? FileManager.default.removeItem(atPath: child.outputPath) }
        guard let code = await child.wait(timeout: .seconds(120)), code == 0 else {
            throw Invalid(description: "\(kind) messages do not match schemas/v1:\n\(child.output)")
        }
    }
}
