// arrayfsm — the command line: argument parsing and wiring of the modules; no logic of its own.
import ArgumentParser
import ArrayFSM
import ArrayFSMTools
import Foundation

/// `arrayfsm bench-scale`: µs per task instance of each operation as the tables fill with other arrays.
struct BenchScaleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-scale",
        abstract: "Time record, instantiate, launch, distributor ids and kill per TI in tables holding 0 to 20M rows of other arrays.",
        discussion: """
            For each level (rows of other arrays in task_instance, as many in task) it seeds the
            difference, runs VACUUM (ANALYZE) and CHECKPOINT (unless --no-settle), then runs each batch size --repeats
            times on fresh arrays. It prints a table (µs/TI, TIs/s, WAL bytes, full-page images,
            buffer hits and reads per TI) and writes a PNG with gnuplot.

            Without --database-url it starts a throwaway PostgreSQL with durable settings (fsync and
            synchronous_commit on) and removes it afterwards. With one, the database must have no
            other writer: it adds seeded arrays (task_template_version_id 0) and leaves them there.
            """
    )

    @Option(help: "postgres://… (env ARRAYFSM_DATABASE_URL); default: a throwaway cluster")
    var databaseURL: String?

    @OptionGroup var connect: ConnectOptions

    @Option(help: "Rows of other arrays to measure at, comma-separated, ascending.")
    var levels = "0,1000000,10000000,20000000"

    @Option(help: "Task instances per timed batch, comma-separated (at most 100000).")
    var batches = "1000,10000,100000"

    @Option(help: "Fresh arrays per level and batch size; the median is reported.")
    var repeats = 3

    @Option(help: "Task instances per seeded array.")
    var seedArraySize = 5_000

    @Option(help: "Tasks in each timed array, one batch of which is timed (default: the batch size).")
    var timedArrayTasks: Int?

    @Flag(inversion: .prefixedNo, help: "VACUUM (ANALYZE) and CHECKPOINT after seeding each level (--no-settle: measure on the freshly seeded tables).")
    var settle = true

    @Option(help: "Where to write the plot (PNG); \"\" for none.")
    var plot = "bench-scale.png"

    @OptionGroup var log: LogOptions

    func run() async throws {
        let logger = log.logger("arrayfsm.bench-scale")
        let benchmark = ScaleBenchmark(
            levels: try Self.list(levels, "--levels"), batches: try Self.list(batches, "--batches"),
            repeats: repeats, seedArraySize: seedArraySize, settle: settle,
            timedArrayTasks: timedArrayTasks)
        do { try benchmark.validate() } catch { throw ValidationError("\(error)") }
        let (url, cluster) = try Environment.databaseOrThrowaway(databaseURL)
        defer { cluster?.stop() }
        let lines = ProgressLines()
        let report = try await url.withClient(
            maxConnections: 2, parameters: DatabaseURL.batchParameters(), connectTimeout: try connect.timeout(), logger: logger
        ) { client in
            try await Migrator().migrate(client, logger: logger)
            return try await benchmark.run(ArrayDatabase(client: client), logger: logger) { lines.show($0) }
        }
        lines.end()
        print(report)
        guard !plot.isEmpty else { return }
        do {
            try ScalePlot(report: report).write(to: plot)
            print("plot: \(plot)")
        } catch let missing as ScalePlot.GnuplotMissing {
            print("plot: \(missing)")
        }
    }

    static func list(_ text: String, _ flag: String) throws -> [Int] {
        let values = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "_", with: "")) }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else { throw ValidationError("\(flag) takes comma-separated integers, got '\(text)'") }
        return values.compactMap { $0 }
    }
}

/// One ``Progress`` line per phase of the benchmark: a new phase ends the line of the one before.
private final class ProgressLines {
    var current: (phase: String, line: Progress)?

    func show(_ progress: ScaleBenchmark.Progress) {
        if current?.phase != progress.phase {
            end()
            current = (progress.phase, Progress(label: progress.phase))
        }
        current?.line.update(progress.done, of: progress.total)
        if progress.done >= progress.total { end() }
    }

    func end() {
        current?.line.finish("done")
        current = nil
    }
}
