import ArgumentParser
import ArrayFSM
import ArrayFSMTesting
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

    @Option(help: "trace, debug, info, notice, warning, error (env ARRAYFSM_LOG_LEVEL)")
    var logLevel: String?

    func run() async throws {
        let logger = Environment.logger("arrayfsm.bench-sql", level: logLevel ?? "warning")
        let (url, cluster) = try Environment.databaseOrThrowaway(databaseURL)
        defer { cluster?.stop() }
        let benchmark = LaunchBenchmark(tasks: tasks, repeats: repeats, smallBatches: smallBatches)
        let report = try await url.withClient(maxConnections: 2, connectTimeout: try connect.timeout(), logger: logger) { client in
            try await Migrator().migrate(client, logger: logger)
            return try await benchmark.run(ArrayDatabase(client: client), logger: logger) { line in
                FileHandle.standardError.write(Data("… \(line)\n".utf8))
            }
        }
        print(Self.format(report, tasks: tasks, repeats: repeats, smallBatches: smallBatches))
    }

    static func format(_ report: LaunchBenchmark.Report, tasks: Int, repeats: Int, smallBatches: Int) -> String {
        func row(_ name: String, _ sample: LaunchBenchmark.Sample) -> String {
            name.padding(toLength: 34, withPad: " ", startingAt: 0)
                + String(format: "%8.3f s %10.0f TIs/s   HOT task %5.1f%%  task_instance %5.1f%%",
                         sample.seconds, sample.rowsPerSecond, sample.hotTask * 100, sample.hotTaskInstance * 100)
        }
        var lines = [
            "launch of one \(tasks)-TI batch (I → O), median of \(repeats), one transaction each:",
            row("  operation (arrayfsm)", report.operation),
            row("  direct SQL returning the ids", report.direct),
            row("  bare SQL (count only)", report.bare),
            row("  bare SQL, Jobmon's indexes", report.jobmonIndexes),
            String(format: "  operation / direct SQL:           %.2f×  (target ≥ 0.90×)",
                   report.operation.rowsPerSecond / report.direct.rowsPerSecond),
            String(format: "  operation / bare SQL:             %.2f×  (the floor: returns nothing the events need)",
                   report.operation.rowsPerSecond / report.bare.rowsPerSecond),
            String(format: "  arrayfsm schema / Jobmon indexes: %.2f×  (bare SQL on both)",
                   report.bare.rowsPerSecond / report.jobmonIndexes.rowsPerSecond),
            "\(smallBatches) batches of 1000 TIs, one transaction each:",
            String(format: "  operation  %10.0f TIs/s = %.1f× Jobmon's %.0f TIs/s (target ≥ 10×)",
                   report.smallBatchOperationRate, report.smallBatchOperationRate / LaunchBenchmark.jobmonLaunchRate,
                   LaunchBenchmark.jobmonLaunchRate),
            String(format: "  direct SQL returning the ids %10.0f TIs/s; operation / direct = %.2f×",
                   report.smallBatchDirectRate, report.smallBatchOperationRate / report.smallBatchDirectRate),
            "pg_stat_user_tables (whole run, resets included):",
        ]
        for (table, updates, hot) in report.tableStats {
            lines.append(
                "  " + table.padding(toLength: 28, withPad: " ", startingAt: 0)
                    + String(format: "n_tup_upd %9d  n_tup_hot_upd %9d  HOT %5.1f%%", updates, hot,
                             updates == 0 ? 0 : Double(hot) / Double(updates) * 100))
        }
        lines.append("settings: " + report.settings.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
        return lines.joined(separator: "\n")
    }
}
