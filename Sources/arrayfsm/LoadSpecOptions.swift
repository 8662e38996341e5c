// arrayfsm — the command line: argument parsing and wiring of the modules; no logic of its own.
import ArgumentParser
import ArrayFSMLoad
import Foundation

/// The workload spec shared by `gen` and `seed`: a JSON file (`--spec`), flags on top of it.
struct LoadSpecOptions: ParsableArguments {
    @Option(help: "A JSON spec file (the fields of these flags, e.g. {\"workflows\": 10, \"seed\": 7}).") var spec: String?
    @Option(help: "Random seed (same spec → same dump).") var seed: UInt64?
    @Option(help: "Workflows.") var workflows: Int?
    @Option(help: "Arrays per workflow.") var arraysPerWorkflow: Int?
    @Option(help: "Fewest tasks per array.") var minTasks: Int?
    @Option(help: "Most tasks per array (log-uniform between).") var maxTasks: Int?
    @Option(help: "Tasks per scheduler batch (≤ 500 in Jobmon).") var batchSize: Int?
    @Option(help: "Share of launched batches that get transition_to_killed.") var killFraction: Double?
    @Option(help: "Share of batches whose submission fails.") var submitFailureFraction: Double?

    func resolve() throws -> LoadSpec {
        var loaded = LoadSpec()
        if let spec {
            guard let data = FileManager.default.contents(atPath: spec) else { throw ValidationError("cannot read \(spec)") }
            do { loaded = try JSONDecoder().decode(LoadSpec.self, from: data) } catch { throw ValidationError("\(spec): \(error)") }
        }
        if let seed { loaded.seed = seed }
        if let workflows { loaded.workflows = workflows }
        if let arraysPerWorkflow { loaded.arraysPerWorkflow = arraysPerWorkflow }
        if let minTasks { loaded.minTasks = minTasks }
        if let maxTasks { loaded.maxTasks = maxTasks }
        if let batchSize { loaded.batchSize = batchSize }
        if let killFraction { loaded.killFraction = killFraction }
        if let submitFailureFraction { loaded.submitFailureFraction = submitFailureFraction }
        if let problem = loaded.problems().first { throw ValidationError(problem) }
        return loaded
    }
}
