import ArrayFSMService
import ArrayFSMTesting
import ArrayFSMTools
import Foundation
import Testing

/// `ServeSetting.all` is the one list of serve's settings: docs/operations.md's table and
/// `arrayfsm serve --help` must show exactly it.
struct ServeSettingsDocumentationTests {
    static let operationsDocument = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docs/operations.md")

    @Test func operationsDocumentHoldsTheGeneratedTable() throws {
        let document = try String(contentsOf: Self.operationsDocument, encoding: .utf8)
        let begin = "<!-- settings table: made from ServeSetting.all; ServeSettingsDocumentationTests checks it -->\n"
        let end = "\n<!-- end of settings table -->"
        let start = try #require(document.range(of: begin), "docs/operations.md has no settings table marker")
        let stop = try #require(document.range(of: end, range: start.upperBound..<document.endIndex))
        let table = String(document[start.upperBound..<stop.lowerBound])
        #expect(table == ServeSetting.markdownTable, "replace docs/operations.md's settings table with:\n\(ServeSetting.markdownTable)")
    }

    @Test func serveHelpListsEveryFlagItsVariableAndDefault() throws {
        let child = try ChildProcess([ServeProcessTests.binary, "serve", "--help"])
        defer { try? FileManager.default.removeItem(atPath: child.outputPath) }
        #expect(child.wait() == 0)
        let help = child.output
        for setting in ServeSetting.all {
            #expect(help.contains("--\(setting.flag) <value>"), "--help omits --\(setting.flag)")
            #expect(help.contains("env \(setting.environmentName); default \(setting.defaultText)"), "--help omits \(setting.environmentName)")
        }
        #expect(help.contains("--kafka <name=value>"))
    }
}
