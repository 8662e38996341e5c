// arrayfsm — the command line: argument parsing and wiring of the modules; no logic of its own.
import ArgumentParser
import ArrayFSM
import ArrayFSMLoad
import ArrayFSMService
import ArrayFSMTools
import Foundation

/// `arrayfsm bench`: a generated workload through serve, with latency per command type and the
/// direct-SQL limit in the same run.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Seed, generate and replay a workload through serve; report commands/s, TIs/s, latency and the direct-SQL ratio.",
        discussion: """
            Uses the database given (or a throwaway durable PostgreSQL) and the broker given (or librdkafka's
            mock cluster in this process). With --serve child (the default) it runs `arrayfsm serve` as a
            child process; with --serve running it measures the serve instances already consuming the
            topics (give the same --database-url they use). The workload comes from the same spec flags
            as gen and seed; with a reused database, move it with --first-array-id and friends in a spec file.
            """
    )

    enum ServeMode: String, ExpressibleByArgument, CaseIterable {
        /// Start `arrayfsm serve` as a child process for the run.
        case child
        /// Measure the `serve` instances already running against this database and broker.
        case running
    }

    @OptionGroup var spec: LoadSpecOptions
    @Option(help: "postgres://… (env ARRAYFSM_DATABASE_URL); default: a throwaway cluster") var databaseURL: String?
    @OptionGroup var connect: ConnectOptions
    @Option(help: "host:port,… of a running broker (env ARRAYFSM_BOOTSTRAP_SERVERS); default: a mock cluster in this process")
    var bootstrapServers: String?
    @Option(help: "child: start serve for the run; running: use the serve instances already running (needs --bootstrap-servers).")
    var serve: ServeMode = .child
    @Option(help: "Commands topic (env ARRAYFSM_COMMANDS_TOPIC)") var commandsTopic: String?
    @Option(help: "Results topic (env ARRAYFSM_RESULTS_TOPIC)") var resultsTopic: String?
    @Flag(help: "Print the report as JSON.") var json = false

    func validate() throws {
        if serve == .running && Environment.value(bootstrapServers, "ARRAYFSM_BOOTSTRAP_SERVERS") == nil {
            throw ValidationError("--serve running measures serve instances on a broker: give --bootstrap-servers")
        }
    }

    func run() async throws {
        let resolved = try spec.resolve()
        let logger = Environment.logger("arrayfsm.bench", level: "warning")
        let (url, cluster) = try Environment.databaseOrThrowaway(databaseURL)
        defer { cluster?.stop() }
        // In-process serve and the direct SQL get the session settings serve gives its connections.
        let report = try await url.withClient(maxConnections: 6, parameters: DatabaseURL.batchParameters(), connectTimeout: try connect.timeout(), logger: logger) { client in
            try await Migrator().migrate(client, logger: logger)
            let database = ArrayDatabase(client: client)
            let harness: ServiceHarness
            if let bootstrap = Environment.value(bootstrapServers, "ARRAYFSM_BOOTSTRAP_SERVERS") {
                var topics = Topics()
                topics.commands = Environment.value(commandsTopic, "ARRAYFSM_COMMANDS_TOPIC") ?? topics.commands
                topics.results = Environment.value(resultsTopic, "ARRAYFSM_RESULTS_TOPIC") ?? topics.results
                let group = serve == .running
                    ? Environment.value(nil, "ARRAYFSM_GROUP_ID") ?? "arrayfsm" : "arrayfsm-bench-\(UUID().uuidString.prefix(8))"
                harness = try ServiceHarness(database: database, bootstrapServers: bootstrap, topics: topics, groupID: group, logger: logger)
            } else {
                harness = try ServiceHarness(database: database, partitions: 16, logger: logger)
            }
            let child = serve == .child
                ? try harness.startServerProcess(
                    binary: URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path, databaseURL: url)
                : nil
            let report = try await LoadBenchmark(spec: resolved).run(harness, logger: logger) { line in
                FileHandle.standardError.write(Data("… \(line)\n".utf8))
            }
            if let child {
                child.signal(SIGTERM)
                _ = await child.wait(timeout: .seconds(60))
            }
            try await harness.shutdown()
            return report
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        print(report.summary(workload: resolved))
    }
}
