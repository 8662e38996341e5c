// ArrayFSMTools, bench-scale: the report's µs/TI drawn against table rows with gnuplot.
import Foundation

/// A PNG of µs/TI against the rows of other arrays, one line per operation and batch size
/// (colour by operation, dash by batch size), drawn by gnuplot (Debian: `gnuplot-nox`).
///
/// The x axis is linear in millions of rows: the first level is usually 0, which a log axis
/// cannot show. The y axis is logarithmic: the operations' costs differ by an order of magnitude.
public struct ScalePlot: Sendable {
    public var report: ScaleReport

    public init(report: ScaleReport) { self.report = report }

    /// gnuplot was not found on PATH.
    public struct GnuplotMissing: Error, CustomStringConvertible {
        public var description: String { "gnuplot not found on PATH (Debian: apt-get install gnuplot-nox); no plot written" }
    }

    /// The gnuplot executable on PATH, if any.
    public static func gnuplot() -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/gnuplot" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Writes the data and the script to a temporary directory, runs gnuplot, and leaves the PNG at `path`.
    public func write(to path: String) throws {
        guard let gnuplot = Self.gnuplot() else { throw GnuplotMissing() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("arrayfsm-bench-scale-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (data, script) = files(dataPath: directory + "/data.tsv", pngPath: path)
        try data.write(toFile: directory + "/data.tsv", atomically: true, encoding: .utf8)
        try script.write(toFile: directory + "/plot.gp", atomically: true, encoding: .utf8)
        try ChildProcess.run([gnuplot, directory + "/plot.gp"])
    }

    /// The data file (one block per line of the plot) and the gnuplot script that draws it.
    func files(dataPath: String, pngPath: String) -> (data: String, script: String) {
        let batches = Array(Set(report.measurements.map(\.batch))).sorted()
        var data = ""
        var plots: [String] = []
        var block = 0
        for (colour, operation) in ScaleBenchmark.Operation.allCases.enumerated() {
            for (dash, batch) in batches.enumerated() {
                let points = report.measurements.filter { $0.operation == operation && $0.batch == batch }.sorted { $0.level < $1.level }
                guard !points.isEmpty else { continue }
                data += "# \(operation.rawValue), batch \(batch)\n"
                for point in points { data += String(format: "%.6f\t%.4f\n", Double(point.level) / 1e6, point.microsecondsPerTI) }
                data += "\n\n"
                plots.append("'\(dataPath)' index \(block) using 1:2 with linespoints lc \(colour + 1) dt \(dash + 1) pt \(colour + 4) "
                             + "title '\(operation.rawValue), \(ScaleReport.count(batch))'")
                block += 1
            }
        }
        let script = """
            set terminal png size 1200,800 noenhanced
            set output '\(pngPath)'
            set title 'arrayfsm bench-scale: cost per task instance against rows of other arrays'
            set xlabel 'rows of other arrays in task and task_instance (millions)'
            set ylabel 'µs per task instance (median of \(report.repeats))'
            set logscale y
            set grid
            set key outside right
            plot \(plots.joined(separator: ", \\\n     "))

            """
        return (data, script)
    }
}
