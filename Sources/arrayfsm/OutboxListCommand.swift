// arrayfsm — the command line: argument parsing and wiring of the modules; no logic of its own.
import ArgumentParser
import ArrayFSM
import ArrayFSMService
import Foundation

/// `arrayfsm outbox list`: the parked rows, one per line.
struct OutboxListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List parked outbox rows: id, topic, key, size, attempts, first and last failure, error."
    )

    @Option(help: "postgres://… (env ARRAYFSM_DATABASE_URL)") var databaseURL: String?
    @OptionGroup var log: LogOptions

    func run() async throws {
        let url = try Environment.databaseURL(databaseURL)
        let logger = log.logger("arrayfsm.outbox")
        let rows = try await url.withClient(maxConnections: 1, logger: logger) { client in
            try await client.withConnection { try await Outbox.parked(on: $0, logger: logger) }
        }
        print(["id", "topic", "key", "bytes", "attempts", "first_failed_at", "last_failed_at", "error"].joined(separator: "\t"))
        for row in rows {
            print([
                String(row.id), row.topic, row.key.map(Self.printable) ?? "(null)", String(row.size), String(row.attempts),
                row.firstFailedAt.map(Self.time) ?? "-", row.lastFailedAt.map(Self.time) ?? "-",
                row.error.replacingOccurrences(of: "\n", with: " "),
            ].joined(separator: "\t"))
        }
        FileHandle.standardError.write(Data("\(rows.count) parked row\(rows.count == 1 ? "" : "s")\n".utf8))
    }

    /// A key as text when it is printable UTF-8, else as hex.
    static func printable(_ key: [UInt8]) -> String {
        if let text = String(validating: key, as: UTF8.self), text.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) {
            return text
        }
        return "0x" + key.map { String(format: "%02x", $0) }.joined()
    }

    static func time(_ date: Date) -> String {
        date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: false).timeZone(separator: .omitted))
    }
}
