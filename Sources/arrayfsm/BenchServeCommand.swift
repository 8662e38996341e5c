import ArgumentParser
import ArrayFSM
import ArrayFSMService
import ArrayFSMTesting
import Foundation

/// `arrayfsm bench-serve`: the service benchmark (commands through Kafka vs direct SQL).
struct BenchServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-serve",
        abstract: "Benchmark serve: a lifecycle via Kafka vs direct SQL, small-command throughput and latency.",
        discussion: """
            Runs serve in-process against an in-process mock Kafka cluster (librdkafka's, 16 partitions)
            and a throwaway durable PostgreSQL (or --database-url), all on this machine.
            """
    )

    @Option(help: "postgres://… (env ARRAYFSM_DATABASE_URL); default: a throwaway cluster") var databaseURL: String?
    @OptionGroup var connect: ConnectOptions
    @Option(help: "Arrays in the lifecycle scenario.") var arrays = 100
    @Option(help: "Tasks (TIs) per array.") var tasks = 1000
    @Option(help: "Rounds of the lifecycle and its direct-SQL limit, each on fresh arrays.") var rounds = 3
    @Option(help: "Small commands per throughput run.") var small = 50_000
    @Option(help: "Commands per second in the latency run.") var rate = 1000
    @Option(help: "Seconds of the latency run.") var seconds = 10
    @Option(help: "Commands per transaction at most.") var maxBatch = 500
    @Option(help: "trace … error (env ARRAYFSM_LOG_LEVEL)") var logLevel: String?
    @Flag(help: "Run serve inside the benchmark process instead of as a child process.") var inProcess = false

    func validate() throws {
        guard arrays >= 1, tasks >= 1, rounds >= 1 else { throw ValidationError("--arrays, --tasks and --rounds must be at least 1") }
    }

    func run() async throws {
        let logger = Environment.logger("arrayfsm.bench", level: logLevel ?? "warning")
        let (url, cluster) = try Environment.databaseOrThrowaway(databaseURL)
        defer { cluster?.stop() }
        let benchmark = ServeBenchmark(arrays: arrays, tasksPerArray: tasks, rounds: rounds, smallCommands: small, pacedRate: rate, pacedSeconds: seconds)
        let maxBatch = self.maxBatch
        // The direct SQL runs with the session settings serve gives its own connections.
        let report = try await url.withClient(maxConnections: 6, parameters: DatabaseURL.batchParameters(), connectTimeout: try connect.timeout(), logger: logger) { client in
            try await Migrator().migrate(client, logger: logger)
            let harness = try ServiceHarness(database: ArrayDatabase(client: client), partitions: 16, logger: logger)
            var child: ChildProcess?
            if inProcess {
                try harness.startServer { $0.maxBatch = maxBatch }
            } else {
                // serve as its own process, as in production: it does not share this process's threads.
                let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
                child = try harness.startServerProcess(binary: binary, databaseURL: url) { $0.maxBatch = maxBatch }
            }
            let report = try await benchmark.run(harness, logger: logger) { line in
                FileHandle.standardError.write(Data("… \(line)\n".utf8))
            }
            if let child {
                child.signal(SIGTERM)
                let code = await child.wait(timeout: .seconds(60))
                if code != 0 { FileHandle.standardError.write(Data("serve exited with \(code.map(String.init) ?? "timeout"):\n\(child.output)".utf8)) }
            }
            try await harness.shutdown()
            return report
        }
        print(Self.format(report))
    }

    /// Jobmon's per-batch rates on these machines (TIs/s), from the reference.
    static let jobmon: [String: Double] = [
        "record_array_batch_num": 7_000, "instantiate_array_batch": 0, "transition_array_to_launched": 2_800,
        "log_array_distributor_id": 3_500,
    ]

    static func format(_ report: ServeBenchmark.Report) -> String {
        let rounds = report.rounds
        var lines = ["(a) lifecycle via Kafka vs (c) the same work as hand-written SQL, \(rounds.count) round(s) summed:"]
        lines.append("  step                              via Kafka TIs/s  direct: tx/array    one tx   grouped    ratio*   vs Jobmon")
        /// Seconds the fastest direct variant would take for the Kafka phase's rows.
        func limit(_ round: ServeBenchmark.Round, _ step: Int) -> Double {
            let fastest = round.direct[3 * step..<3 * step + 3].map(\.rowsPerSecond).max()!
            return Double(round.viaKafka[step].rows) / fastest
        }
        func rate(_ phases: [ServeBenchmark.Phase]) -> Double {
            Double(phases.reduce(0) { $0 + $1.rows }) / phases.reduce(0.0) { $0 + $1.seconds }
        }
        for (step, last) in rounds[rounds.count - 1].viaKafka.enumerated() {
            let kafka = rate(rounds.map { $0.viaKafka[step] })
            let stepLimit = rounds.reduce(0.0) { $0 + limit($1, step) }
            let stepKafka = rounds.reduce(0.0) { $0 + $1.viaKafka[step].seconds }
            let jobmon = Self.jobmon[last.name] ?? 0
            lines.append(
                "  " + last.name.padding(toLength: 32, withPad: " ", startingAt: 0)
                    + String(format: "%14.0f %17.0f %9.0f %9.0f   %5.2f×   %@", kafka, rate(rounds.map { $0.direct[3 * step] }),
                             rate(rounds.map { $0.direct[3 * step + 1] }), rate(rounds.map { $0.direct[3 * step + 2] }), stepLimit / stepKafka,
                             jobmon > 0 ? String(format: "%.0f×", kafka / jobmon) : "—"))
            if let span = last.span {
                lines.append(String(format: "      ms from the first send (last round): first applied %.0f, last applied %.0f, last relayed %.0f, last read %.0f",
                                    span.firstApplied, span.lastApplied, span.lastRelayed, span.lastRead))
            }
        }
        let perRound = rounds.map { round in
            (kafka: round.viaKafka.reduce(0.0) { $0 + $1.seconds }, limit: round.viaKafka.indices.reduce(0.0) { $0 + limit(round, $1) })
        }
        let kafkaTotal = perRound.reduce(0.0) { $0 + $1.kafka }
        let limitTotal = perRound.reduce(0.0) { $0 + $1.limit }
        lines.append(String(format: "  whole lifecycle: via Kafka %.2f s, the direct limit %.2f s: ratio %.2f× (target ≥ 0.8×)",
                            kafkaTotal, limitTotal, limitTotal / kafkaTotal))
        if rounds.count > 1 {
            lines.append("  per round, each step's ratio → the round's:")
            for (index, round) in rounds.enumerated() {
                let steps = round.viaKafka.indices.map { String(format: "%.2f", limit(round, $0) / round.viaKafka[$0].seconds) }
                lines.append("    \(index + 1): " + steps.joined(separator: " ")
                             + String(format: " → %.2f×", perRound[index].limit / perRound[index].kafka))
            }
        }
        lines.append("  * via Kafka / the fastest direct variant; Jobmon: record 7,000, launch 2,800, distributor ids 3,500 TIs/s")
        lines.append("(b) small commands (latency: send → result read):")
        lines.append("  run                                  commands   commands/s    p50 ms    p99 ms")
        for phase in report.small {
            lines.append(
                "  " + phase.name.padding(toLength: 36, withPad: " ", startingAt: 0)
                    + String(format: "%9d %12.0f %9.1f %9.1f", phase.commands, phase.commandsPerSecond,
                             phase.percentile(0.5), phase.percentile(0.99)))
            if let stages = phase.stages {
                lines.append(String(format: "      medians: sent → applied %.1f ms, applied → relayed %.1f ms, relayed → read %.1f ms",
                                    stages.applied, stages.relayed, stages.read))
            }
            if let stages = phase.stagesP99 {
                lines.append(String(format: "      p99s:    sent → applied %.1f ms, applied → relayed %.1f ms, relayed → read %.1f ms",
                                    stages.applied, stages.relayed, stages.read))
            }
        }
        lines.append("  targets: launch ≥ 2,000/s; get_array_max_concurrently_running ≥ 5,000/s (Jobmon ≈ 45/s); p99 < 50 ms at 1,000/s")
        return lines.joined(separator: "\n")
    }
}
