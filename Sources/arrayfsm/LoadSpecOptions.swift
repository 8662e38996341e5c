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

/// `arrayfsm gen`: a generated workload as a topic dump.
struct GenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gen",
        abstract: "Write a generated workload as a topic dump (kcat -C -J format); replay it after `arrayfsm seed`.")

    @OptionGroup var spec: LoadSpecOptions
    @Option(help: "Topic recorded in the dump.") var topic = "arrayfsm.commands"
    @Option(name: .shortAndLong, help: "Output file (default: standard output).") var output: String?

    func run() async throws {
        let resolved = try spec.resolve()
        let sink = try LineSink(path: output)
        let progress = Progress(label: "gen")
        var count = 0
        try WorkloadGenerator(spec: resolved, topic: topic).generate { record in
            try sink.write(record.line())
            count += 1
            if count % 10_000 == 0 { progress.update(count) }
        }
        try sink.close()
        progress.finish("\(count) commands for \(resolved.workflows * resolved.arraysPerWorkflow) arrays")
    }
}

/// `arrayfsm seed`: the arrays and tasks a generated workload refers to, by COPY.
struct SeedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seed",
        abstract: "Create, with COPY, the arrays and tasks (status G) that `arrayfsm gen` with the same spec refers to.")

    @OptionGroup var spec: LoadSpecOptions
    @Option(help: "postgres://… (env ARRAYFSM_DATABASE_URL)") var databaseURL: String?
    @OptionGroup var connect: ConnectOptions

    func run() async throws {
        let resolved = try spec.resolve()
        let url = try Environment.databaseURL(databaseURL)
        let logger = Environment.logger("arrayfsm.seed", level: "warning")
        let progress = Progress(label: "seed")
        let (arrays, tasks) = try await url.withClient(maxConnections: 1, connectTimeout: try connect.timeout(), logger: logger) { client in
            try await Seeder(spec: resolved).seed(client, logger: logger) { progress.update($0, of: $1) }
        }
        progress.finish("\(arrays) arrays, \(tasks) tasks")
    }
}
