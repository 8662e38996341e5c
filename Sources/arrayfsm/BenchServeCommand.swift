// arrayfsm — the command line: argument parsing and wiring of the modules; no logic of its own.
import ArgumentParser
import ArrayFSM
import ArrayFSMService
import ArrayFSMTools
import Foundation
import Logging

/// `arrayfsm bench-serve`: the service benchmark (commands through Kafka vs direct SQL).
struct BenchServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-serve",
        abstract: "Benchmark serve: a lifecycle via Kafka vs direct SQL, small-command throughput and latency.",
        discussion: """
            Runs serve as a child process against an in-process mock Kafka cluster (librdkafka's, with
            --partitions) and a throwaway durable PostgreSQL (or --database-url), all on this machine.
            With --bootstrap-servers, serve and the benchmark use that broker instead: serve creates
            topics of its own for the run (--partitions), so the mock cluster's fetch waits (5 ms
            per consumer hop) are not in the latencies.
            """
    )

    @Option(help: "postgres://… (env ARRAYFSM_DATABASE_URL); default: a throwaway cluster") var databaseURL: String?
    @Option(help: "A running broker, host:port (e.g. `scripts/noida-broker start`); default: an in-process mock cluster")
    var bootstrapServers: String?
    @OptionGroup var connect: ConnectOptions
    @Option(help: "Arrays in the lifecycle scenario.") var arrays = 100
    @Option(help: "Tasks (TIs) per array.") var tasks = 1000
    @Option(help: "Rounds of the lifecycle and its direct-SQL limit, each on fresh arrays.") var rounds = 3
    @Option(help: "Small commands per throughput run.") var small = 50_000
    @Option(help: "Commands per second in the latency run.") var rate = 1000
    @Option(help: "Seconds of the latency run.") var seconds = 10
    @Option(help: "Commands per transaction at most.") var maxBatch = 500
    @Option(help: "Partitions of the run's topics.") var partitions: Int32 = 16
    @Option(name: .customLong("serve-kafka"), help: "librdkafka property name=value for serve, over the benchmark's (repeatable; e.g. linger.ms=5)")
    var serveKafka: [String] = []
    @Option(name: .customLong("client-kafka"), help: "librdkafka property name=value for the benchmark's client (repeatable; e.g. fetch.wait.max.ms=1)")
    var clientKafka: [String] = []
    @OptionGroup var log: LogOptions
    @Flag(help: "Run serve inside the benchmark process instead of as a child process.") var inProcess = false

    func validate() throws {
        guard arrays >= 1, tasks >= 1, rounds >= 1 else { throw ValidationError("--arrays, --tasks and --rounds must be at least 1") }
    }

    func run() async throws {
        let logger = log.logger("arrayfsm.bench")
        let (url, cluster) = try Environment.databaseOrThrowaway(databaseURL)
        defer { cluster?.stop() }
        var benchmark = ServeBenchmark(arrays: arrays, tasksPerArray: tasks, rounds: rounds, smallCommands: small, pacedRate: rate, pacedSeconds: seconds)
        benchmark.clientKafkaProperties = try ServeConfiguration.kafkaProperties(flags: clientKafka, environment: [:])
        let (maxBatch, partitions) = (self.maxBatch, self.partitions)
        let serveKafka = try ServeConfiguration.kafkaProperties(flags: serveKafka, environment: [:])
        let configure = { (configuration: inout ServeConfiguration) in
            configuration.maxBatch = maxBatch
            configuration.partitions = partitions
            configuration.kafkaProperties.merge(serveKafka) { $1 }
        }
        // The direct SQL runs with the session settings serve gives its own connections.
        let report = try await url.withClient(maxConnections: 6, parameters: DatabaseURL.batchParameters(), connectTimeout: try connect.timeout(), logger: logger) { client in
            try await Migrator().migrate(client, logger: logger)
            let harness = try benchmarkHarness(ArrayDatabase(client: client), logger: logger)
            var child: ChildProcess?
            if inProcess {
                try harness.startServer(configure)
            } else {
                // serve as its own process, as in production: it does not share this process's threads.
                let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
                child = try harness.startServerProcess(binary: binary, databaseURL: url, configure)
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
        print(report.summary)
    }


    /// The mock cluster, or the given broker with topics and a group named for this run (serve
    /// creates the topics when it starts), so that runs on one broker never read each other's messages.
    func benchmarkHarness(_ database: ArrayDatabase, logger: Logger) throws -> ServiceHarness {
        guard let bootstrapServers else { return try ServiceHarness(database: database, partitions: partitions, logger: logger) }
        let run = "bench-\(UUID().uuidString.prefix(8).lowercased())"
        var topics = Topics()
        topics.commands = "\(run).commands"
        topics.results = "\(run).results"
        topics.transitions = "\(run).transitions"
        topics.deadLetters = "\(run).dlq"
        return try ServiceHarness(database: database, bootstrapServers: bootstrapServers, topics: topics, groupID: run, logger: logger)
    }
}
