// arrayfsm — the command line: argument parsing and wiring of the modules; no logic of its own.
import ArgumentParser
import ArrayFSM
import ArrayFSMTools
import Foundation

/// `arrayfsm bench-sql`: the launch benchmark of the foundation (operation vs direct SQL vs Jobmon's indexes).
struct BenchSQLCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-sql",
        abstract: "Time launching a 100,000-TI batch through the operation, as direct SQL, and on Jobmon's index set.",
        discussion: """
            Without --database-url it starts a throwaway PostgreSQL with durable settings (fsync and
            synchronous_commit on) and removes it afterwards. With one, it adds its own arrays and
            drops the bench_jobmon_* tables it creates.
            """
    )

    @Option(help: "postgres://… (env ARRAYFSM_DATABASE_URL); default: a throwaway cluster")
    var databaseURL: String?

    @OptionGroup var connect: ConnectOptions

    @Option(help: "Tasks in the big batch.")
    var tasks = 100_000

    @Option(help: "Rounds per variant; the median is reported.")
    var repeats = 3

    @Option(help: "Number of 1000-TI batches for the per-batch rate.")
    var smallBatches = 100

    @OptionGroup var log: LogOptions

    func run() async throws {
        let logger = log.logger("arrayfsm.bench-sql")
        let (url, cluster) = try Environment.databaseOrThrowaway(databaseURL)
        defer { cluster?.stop() }
        let benchmark = LaunchBenchmark(tasks: tasks, repeats: repeats, smallBatches: smallBatches)
        let report = try await url.withClient(maxConnections: 2, connectTimeout: try connect.timeout(), logger: logger) { client in
            try await Migrator().migrate(client, logger: logger)
            return try await benchmark.run(ArrayDatabase(client: client), logger: logger) { line in
                FileHandle.standardError.write(Data("… \(line)\n".utf8))
            }
        }
        print(report.summary)
    }
}
