// arrayfsm — the command line: argument parsing and wiring of the modules; no logic of its own.
import ArgumentParser
import ArrayFSM
import ArrayFSMLoad
import Foundation

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
