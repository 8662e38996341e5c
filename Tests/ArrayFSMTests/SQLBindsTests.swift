import Foundation
import Testing

/// Every value reaches PostgreSQL as a bind parameter. PostgresNIO's `query("… \(value) …")`
/// always binds interpolated values; the only ways to splice text into SQL are
/// `PostgresQuery(unsafeSQL:)` and `\(unescaped:)`. This lint keeps those out of the code that
/// handles commands, and lists the few places allowed to use them and why.
struct SQLBindsTests {
    /// Files allowed to build SQL text, with the reason.
    static let allowed: [String: String] = [
        "Sources/ArrayFSM/Migrations/Migrator.swift": "runs the migrations' constant DDL statements",
        "Sources/ArrayFSMChaos/ServiceRole.swift": "ALTER ROLE … SET takes no binds; the value is checked to be a plain duration",
        "Sources/ArrayFSMChaos/ChaosRun.swift": "CREATE DATABASE of the scenario's own databases (fixed names)",
        "Sources/ArrayFSMTesting/TestPostgres.swift": "CREATE/DROP DATABASE of test databases (generated names)",
        "Sources/ArrayFSMTools/LaunchBenchmark.swift": "benchmark copies of tables under generated names; values still bound",
        "Sources/ArrayFSMTools/ServeBenchmark/ServeBenchmark+DirectSQL.swift": "the direct-SQL limit runs constant statements with binds",
    ]

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func sqlIsBuiltWithBindsOnly() throws {
        var offenders: [String] = []
        let root = Self.root
        let sources = root.appendingPathComponent("Sources")
        let files = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)!
            .compactMap { $0 as? URL }.filter { $0.pathExtension == "swift" }
        #expect(files.count > 50, "found the sources")
        for file in files {
            let relative = String(file.path.dropFirst(root.path.count + 1))
            let text = try String(contentsOf: file, encoding: .utf8)
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            where line.contains("unsafeSQL:") || line.contains("unescaped:") {
                if Self.allowed[relative] == nil { offenders.append("\(relative):\(number + 1): \(line.trimmingCharacters(in: .whitespaces))") }
            }
        }
        #expect(offenders.isEmpty, "SQL built from strings outside the allowed files:\n\(offenders.joined(separator: "\n"))")
    }
}
