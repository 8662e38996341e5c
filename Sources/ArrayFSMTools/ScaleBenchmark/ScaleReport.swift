// ArrayFSMTools, bench-scale: the figures of a run and how they print.
import Foundation

/// What ``ScaleBenchmark`` measured: per level how the tables were filled, per (level, batch
/// size, operation) the medians per task instance, and the server's settings.
public struct ScaleReport: Sendable, CustomStringConvertible {
    /// How one level's tables were reached and what they hold when it is measured.
    public struct Level: Sendable {
        /// Rows of other arrays asked for (task instances; as many tasks).
        public var rows: Int
        /// Rows in `task_instance` after seeding, counted (other arrays' only: the timed ones are added after).
        public var taskInstanceRows = 0
        /// Seeding the rows from the level before.
        public var seedSeconds = 0.0
        public var seedWALBytes = 0.0
        /// Whether VACUUM (ANALYZE) and CHECKPOINT ran after seeding (``ScaleBenchmark/settle``).
        public var settled = true
        public var vacuumSeconds = 0.0
        /// nil when the CHECKPOINT was refused (it needs superuser or pg_checkpoint) or not run.
        public var checkpointSeconds: Double?
        /// `pg_total_relation_size` (heap, indexes, TOAST) and `pg_database_size` after seeding.
        public var taskBytes: Int64 = 0
        public var taskInstanceBytes: Int64 = 0
        public var databaseBytes: Int64 = 0
        /// Median wall time of an empty write transaction (BEGIN, an xid, COMMIT) just before the level is measured.
        public var commitMilliseconds = 0.0
        /// The client machine's 1-minute load average then (nil where unknown).
        public var loadAverage: Double?

        public init(rows: Int) { self.rows = rows }
    }

    /// One operation at one batch size and level: medians over the repeats, each figure on its own.
    public struct Measurement: Sendable {
        public var level: Int
        public var batch: Int
        public var operation: ScaleBenchmark.Operation
        public var seconds: Double
        public var walBytesPerTI: Double
        public var fullPageImagesPerTI: Double
        public var blocksHitPerTI: Double
        public var blocksReadPerTI: Double

        public var microsecondsPerTI: Double { seconds * 1e6 / Double(batch) }
        public var taskInstancesPerSecond: Double { Double(batch) / seconds }

        init(level: Int, batch: Int, operation: ScaleBenchmark.Operation, samples: [ScaleBenchmark.Sample]) {
            let n = Double(batch)
            func median(_ values: [Double]) -> Double {
                guard !values.isEmpty else { return .nan }
                return values.sorted()[values.count / 2]
            }
            self.level = level
            self.batch = batch
            self.operation = operation
            seconds = median(samples.map(\.seconds))
            walBytesPerTI = median(samples.map { $0.counters.walBytes / n })
            fullPageImagesPerTI = median(samples.map { Double($0.counters.walFullPageImages) / n })
            blocksHitPerTI = median(samples.map { Double($0.counters.blocksHit) / n })
            blocksReadPerTI = median(samples.map { Double($0.counters.blocksRead) / n })
        }
    }

    public var levels: [Level]
    public var measurements: [Measurement]
    public var settings: [(String, String)]
    public var repeats: Int
    public var seedArraySize: Int
    /// Tasks in each timed array when larger than its batch (``ScaleBenchmark/timedArrayTasks``).
    public var timedArrayTasks: Int?

    /// The measurement of `operation` at `batch` and `level`, if it was run.
    public func measurement(_ operation: ScaleBenchmark.Operation, batch: Int, level: Int) -> Measurement? {
        measurements.first { $0.operation == operation && $0.batch == batch && $0.level == level }
    }

    /// The report as bench-scale prints it: seeding per level, the figures, and µs/TI against the first level.
    public var description: String {
        var lines: [String] = []
        lines.append("settings: " + settings.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
        lines.append("")
        lines.append("seeding (other arrays of \(Self.count(seedArraySize)) TIs, mostly D; VACUUM (ANALYZE) and CHECKPOINT after each level unless skipped;")
        lines.append("commit ms: an empty write transaction just before measuring; load: this machine's 1-minute load average then):")
        let levelWidths = [12, 12, 9, 10, 9, 13, 10, 14, 10, 10, 6]
        lines.append(Self.columns(["level", "TI rows", "seed s", "seed WAL", "vacuum s", "checkpoint s", "task", "task_instance", "database",
                                   "commit ms", "load"], widths: levelWidths))
        for level in levels {
            lines.append(Self.columns([
                Self.count(level.rows), Self.count(level.taskInstanceRows), String(format: "%.1f", level.seedSeconds),
                Self.bytes(level.seedWALBytes), level.settled ? String(format: "%.1f", level.vacuumSeconds) : "skipped",
                level.checkpointSeconds.map { String(format: "%.1f", $0) } ?? (level.settled ? "refused" : "skipped"),
                Self.bytes(Double(level.taskBytes)), Self.bytes(Double(level.taskInstanceBytes)), Self.bytes(Double(level.databaseBytes)),
                String(format: "%.2f", level.commitMilliseconds), level.loadAverage.map { String(format: "%.1f", $0) } ?? "-",
            ], widths: levelWidths))
        }
        lines.append("")
        let arrays = timedArrayTasks.map { "fresh arrays of \(Self.count($0)) tasks (one batch timed)" } ?? "fresh arrays"
        lines.append("per task instance, median of \(repeats) \(arrays), one transaction per operation:")
        let widths = [12, 8, 16, 9, 11, 10, 8, 9, 9]
        lines.append(Self.columns(["level", "batch", "operation", "µs/TI", "TIs/s", "WAL B/TI", "FPI/TI", "hits/TI", "reads/TI"], widths: widths))
        for m in measurements {
            lines.append(Self.columns([
                Self.count(m.level), Self.count(m.batch), m.operation.rawValue, String(format: "%.2f", m.microsecondsPerTI),
                String(format: "%.0f", m.taskInstancesPerSecond), String(format: "%.0f", m.walBytesPerTI),
                String(format: "%.3f", m.fullPageImagesPerTI), String(format: "%.1f", m.blocksHitPerTI), String(format: "%.2f", m.blocksReadPerTI),
            ], widths: widths))
        }
        if let first = levels.first, levels.count > 1 {
            lines.append("")
            lines.append("µs/TI against \(Self.count(first.rows)) rows (the goal: within ±20% at every level, 10k and 100k batches):")
            let batches = Array(Set(measurements.map(\.batch))).sorted()
            lines.append(Self.columns(["operation", "batch"] + levels.dropFirst().map { Self.count($0.rows) }, widths: [16, 8] + levels.dropFirst().map { _ in 12 }))
            for operation in ScaleBenchmark.Operation.allCases {
                for batch in batches {
                    guard let base = measurement(operation, batch: batch, level: first.rows) else { continue }
                    let changes = levels.dropFirst().map { level -> String in
                        guard let m = measurement(operation, batch: batch, level: level.rows) else { return "-" }
                        return String(format: "%+.0f%%", (m.microsecondsPerTI / base.microsecondsPerTI - 1) * 100)
                    }
                    lines.append(Self.columns([operation.rawValue, Self.count(batch)] + changes, widths: [16, 8] + changes.map { _ in 12 }))
                }
            }
        }
        return lines.joined(separator: "\n")
    }

    /// `1,000,000`-style grouping.
    static func count(_ n: Int) -> String {
        let digits = String(n.magnitude)
        var grouped = ""
        for (index, digit) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { grouped += "," }
            grouped.append(digit)
        }
        return (n < 0 ? "-" : "") + grouped
    }

    static func bytes(_ n: Double) -> String {
        switch n {
        case 1e9...: String(format: "%.2f GB", n / 1e9)
        case 1e6...: String(format: "%.1f MB", n / 1e6)
        case 1e3...: String(format: "%.1f kB", n / 1e3)
        default: String(format: "%.0f B", n)
        }
    }

    /// Cells padded to `widths`, the first left-aligned, the others right-aligned.
    private static func columns(_ cells: [String], widths: [Int]) -> String {
        zip(cells, widths).enumerated().map { index, pair in
            let (cell, width) = pair
            let pad = String(repeating: " ", count: max(0, width - cell.count))
            return index == 0 ? cell + pad : pad + cell
        }.joined(separator: " ")
    }
}
