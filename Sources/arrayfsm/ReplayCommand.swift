// arrayfsm — the command line: argument parsing and wiring of the modules; no logic of its own.
import ArgumentParser
import ArrayFSMLoad
import Foundation
import Kafka

/// `arrayfsm replay`: a dump's messages produced to a topic.
struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Produce a dump's messages (arrayfsm dump or kcat -C -J output) to a topic, in order per key.",
        discussion: "As fast as possible by default; --rate N messages per second; --speed F relative to the recorded timestamps."
    )

    @OptionGroup var broker: BrokerOptions
    @Option(help: "Target topic (default: each message's recorded topic).") var topic: String?
    @Option(help: "Messages per second.") var rate: Double?
    @Option(help: "Speed relative to the recorded timestamps (2 = twice as fast).") var speed: Double?
    @Argument(help: "Dump file (default: standard input).") var file: String?

    func run() async throws {
        let bootstrap = try broker.bootstrap()
        if rate != nil && speed != nil { throw ValidationError("give --rate or --speed, not both") }
        if let rate, !(rate > 0) { throw ValidationError("--rate must be positive") }
        if let speed, !(speed > 0) { throw ValidationError("--speed must be positive") }
        let pace: Replayer.Pace = rate.map { .rate($0) } ?? speed.map { .speed($0) } ?? .asFastAsPossible
        let producer = try KafkaProducer(
            configuration: KafkaConfiguration(bootstrapServers: bootstrap, clientID: "arrayfsm-replay",
                                              properties: try broker.properties()),
            logger: Environment.logger("arrayfsm.replay", level: "warning"))
        let handle: FileHandle
        var total: Int?
        if let file, file != "-" {
            guard let opened = FileHandle(forReadingAtPath: file) else { throw ValidationError("cannot read \(file)") }
            handle = opened
            // Counted first (cheaply, by newlines) only to show progress with an ETA on a terminal.
            if isatty(2) == 1 { total = LineReader(handle: FileHandle(forReadingAtPath: file)!).reduce(0) { n, _ in n + 1 } }
        } else {
            handle = FileHandle.standardInput
        }
        let progress = Progress(label: "replay")
        let sent = try await Replayer(producer: producer, topic: topic, pace: pace).replay(lines: LineReader(handle: handle)) {
            progress.update($0, of: total)
        }
        await producer.close()
        progress.finish("\(sent) messages delivered")
    }
}
