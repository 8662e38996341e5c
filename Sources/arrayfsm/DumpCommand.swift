// arrayfsm — the command line: argument parsing and wiring of the modules; no logic of its own.
import ArgumentParser
import ArrayFSMLoad
import Foundation

/// `arrayfsm dump`: a topic into a dump file (JSON Lines, kcat -C -J format).
struct DumpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "Read a topic (all partitions) into a dump file in kcat -C -J format.",
        discussion: "Reads to the end the topic had when the dump started, or --count messages. Commits no offsets."
    )

    @OptionGroup var broker: BrokerOptions
    @Option(help: "The topic to read.") var topic: String
    @Option(help: "Skip messages below this offset in each partition.") var startOffset: Int64?
    @Option(help: "Skip messages older than this time (RFC 3339, e.g. 2026-11-30T12:00:00Z).") var startTime: String?
    @Option(help: "Stop after this many messages.") var count: Int?
    @Option(name: .shortAndLong, help: "Output file (default: standard output).") var output: String?

    func run() async throws {
        let bootstrap = try broker.bootstrap()
        var start = Dumper.Start.beginning
        if let startOffset { start = .offset(startOffset) }
        if let startTime {
            guard let date = try? Date(startTime, strategy: .iso8601) else { throw ValidationError("--start-time must be RFC 3339, got '\(startTime)'") }
            start = .timestamp(Int64(date.timeIntervalSince1970 * 1000))
        }
        let dumper = Dumper(bootstrapServers: bootstrap, topic: topic, start: start, count: count,
                            properties: try broker.properties())
        let sink = try LineSink(path: output)
        let progress = Progress(label: "dump \(topic)")
        let written = try await dumper.dump(logger: Environment.logger("arrayfsm.dump", level: "warning"),
                                            progress: { progress.update($0, of: $1) }) { record in
            try sink.write(record.line())
        }
        try sink.close()
        progress.finish("\(written) messages")
    }
}

/// Lines to a file or standard output, buffered.
final class LineSink {
    private let handle: FileHandle
    private var buffer = Data()
    private let closeAtEnd: Bool

    init(path: String?) throws {
        if let path, path != "-" {
            FileManager.default.createFile(atPath: path, contents: nil)
            guard let handle = FileHandle(forWritingAtPath: path) else { throw ValidationError("cannot write \(path)") }
            self.handle = handle
            closeAtEnd = true
        } else {
            handle = FileHandle.standardOutput
            closeAtEnd = false
        }
    }

    func write(_ line: String) throws {
        buffer.append(contentsOf: line.utf8)
        buffer.append(0x0A)
        if buffer.count > 1 << 20 { try flush() }
    }

    func flush() throws {
        try handle.write(contentsOf: buffer)
        buffer.removeAll(keepingCapacity: true)
    }

    func close() throws {
        try flush()
        if closeAtEnd { try handle.close() }
    }
}
