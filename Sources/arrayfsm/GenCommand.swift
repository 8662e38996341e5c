// arrayfsm — the command line: argument parsing and wiring of the modules; no logic of its own.
import ArgumentParser
import ArrayFSMLoad
import Foundation

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
