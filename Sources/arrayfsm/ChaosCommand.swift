// arrayfsm — the command line: argument parsing and wiring of the modules; no logic of its own.
import ArgumentParser
import ArrayFSMChaos
import Foundation

/// `arrayfsm chaos`: the fault-injection suite, one scenario after another, and its table.
struct ChaosCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chaos",
        abstract: "Replay a workload through serve while injecting faults; check nothing was lost or applied twice.",
        discussion: """
            Each scenario starts its own throwaway PostgreSQL, librdkafka's mock cluster and `arrayfsm serve`
            child processes (as the least-privilege role arrayfsm_serve), all on 127.0.0.1, and checks the
            result against a clean run of the same messages. Scenarios: \(ChaosScenario.allCases.map(\.rawValue).joined(separator: ", ")).
            Exits non-zero if any scenario breaks a promise.
            """
    )

    @Option(name: .customLong("scenario"), help: "Scenario to run (repeatable; default: all).") var scenarios: [String] = []
    @Flag(help: "The long mode: 50 faults per scenario, a larger workload.") var long = false
    @Option(help: "Faults per scenario (overrides the mode's).") var faults: Int?
    @Option(help: "Random seed of the workload.") var seed: UInt64 = 42
    @Flag(help: "Print the reports as JSON.") var json = false

    func run() async throws {
        let logger = Environment.logger("arrayfsm.chaos", level: "error")
        let chosen = try scenarios.isEmpty ? ChaosScenario.allCases : scenarios.map { name in
            guard let scenario = ChaosScenario(rawValue: name) else {
                throw ValidationError("unknown scenario \(name); one of \(ChaosScenario.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return scenario
        }
        var size = long ? ChaosSize.long : .small
        if let faults { size.faults = faults }
        let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        var reports: [ChaosReport] = []
        for scenario in chosen {
            let report = try await ChaosRun(scenario: scenario, size: size, binary: binary, seed: seed).run(logger: logger) { line in
                FileHandle.standardError.write(Data("… \(line)\n".utf8))
            }
            FileHandle.standardError.write(Data("\(report.row)\n".utf8))
            for exit in report.serveExits.prefix(10) { FileHandle.standardError.write(Data("   ! \(exit)\n".utf8)) }
            for violation in report.violations.prefix(20) { FileHandle.standardError.write(Data("   ✗ \(violation)\n".utf8)) }
            reports.append(report)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(reports), as: UTF8.self))
        } else {
            print(ChaosReport.header)
            for report in reports { print(report.row) }
            for report in reports where !report.inputs.isEmpty {
                print("\n\(report.scenario.rawValue), by input:\n" + ChaosReport.InputOutcome.header)
                for input in report.inputs { print(input.row) }
            }
        }
        if reports.contains(where: { !$0.passed }) { throw ExitCode.failure }
    }
}
