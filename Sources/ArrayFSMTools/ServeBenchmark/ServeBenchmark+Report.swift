// ArrayFSMTools, bench-serve: the report types and the report as text.
import Foundation

extension ServeBenchmark {
    /// One timed phase.
    public struct Phase: Sendable {
        public var name: String
        public var commands: Int
        public var rows: Int
        public var seconds: Double
        public var latencies: [Double]  // milliseconds, sorted
        /// Medians of where the time went, in milliseconds: send → applied (`processed_at`),
        /// applied → relayed (the result's Kafka timestamp), relayed → read.
        public var stages: (applied: Double, relayed: Double, read: Double)? = nil
        /// The same stages' 99th percentiles: where the tail comes from.
        public var stagesP99: (applied: Double, relayed: Double, read: Double)? = nil
        /// Milliseconds from the first send (wall clock): the first and last command applied
        /// (`processed_at`), the last result relayed (its Kafka timestamp) and read.
        public var span: (firstApplied: Double, lastApplied: Double, lastRelayed: Double, lastRead: Double)? = nil
        public var rowsPerSecond: Double { Double(rows) / seconds }
        public var commandsPerSecond: Double { Double(commands) / seconds }
        public func percentile(_ p: Double) -> Double {
            latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]
        }
    }

    /// One round of (a) and (c) on fresh arrays.
    public struct Round: Sendable {
        /// (a): one phase per lifecycle step.
        public var viaKafka: [Phase]
        /// (c): three phases per lifecycle step: a transaction per array, one transaction for all,
        /// one transaction with one statement per step for all.
        public var direct: [Phase]
    }

    public struct Report: Sendable {
        public var rounds: [Round]
        public var small: [Phase]
    }
}

extension ServeBenchmark.Report {
    /// Jobmon's per-batch rates on these machines (TIs/s), from the reference.
    static let jobmon: [String: Double] = [
        "record_array_batch_num": 7_000, "instantiate_array_batch": 0, "transition_array_to_launched": 2_800,
        "log_array_distributor_id": 3_500,
    ]

    /// The report as bench-serve prints it: (a) against (c) and Jobmon per step, then (b).
    public var summary: String {
        let report = self
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
        lines.append(String(format: "  whole lifecycle: via Kafka %.2f s, the direct limit %.2f s: ratio %.2f× (target ≥ 0.95×)",
                            kafkaTotal, limitTotal, limitTotal / kafkaTotal))
        if rounds.count > 1 {
            lines.append("  per round, each step's ratio → the round's:")
            for (index, round) in rounds.enumerated() {
                let steps = round.viaKafka.indices.map { String(format: "%.2f", limit(round, $0) / round.viaKafka[$0].seconds) }
                lines.append("    \(index + 1): " + steps.joined(separator: " ")
                             + String(format: " → %.2f×", perRound[index].limit / perRound[index].kafka))
            }
        }
        lines.append("  * via Kafka / the fastest direct variant (target: record ≥ 0.9×); Jobmon: record 7,000, launch 2,800,")
        lines.append("    distributor ids 3,500 TIs/s (target: every step ≥ 30×)")
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
        lines.append("  targets: launch ≥ 10,000/s; get_array_max_concurrently_running ≥ 5,000/s (Jobmon ≈ 45/s);")
        lines.append("           paced p99 < 20 ms at 1,000/s, < 50 ms at 3,000/s")
        return lines.joined(separator: "\n")
    }
}
