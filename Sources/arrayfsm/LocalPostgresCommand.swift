// arrayfsm — the command line: argument parsing and wiring of the modules; no logic of its own.
import ArgumentParser
import ArrayFSM
import ArrayFSMTools
import Foundation

/// `arrayfsm local-postgres`: a throwaway PostgreSQL for development, like `dev-broker` for Kafka.
struct LocalPostgresCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "local-postgres",
        abstract: "Start a throwaway PostgreSQL cluster, print its URL as the first line of stdout, run until SIGINT/SIGTERM.",
        discussion: "The cluster lives in a temporary directory that is deleted on exit. Needs Debian's postgresql package."
    )

    @Flag(help: "Keep fsync and synchronous_commit on (for benchmarks that claim durability).")
    var durable = false

    @Flag(help: "Apply arrayfsm's migrations before printing the URL.")
    var migrate = false

    func run() async throws {
        let signals = SignalWaiter([SIGINT, SIGTERM])
        let cluster = try ThrowawayPostgres(settings: durable ? [] : ThrowawayPostgres.fastSettings)
        defer { cluster.stop() }
        if migrate {
            let logger = Environment.logger("arrayfsm.local-postgres", level: nil)
            _ = try await cluster.url.withClient(maxConnections: 1, logger: logger) { client in
                try await Migrator().migrate(client, logger: logger)
            }
        }
        print(cluster.url.string)
        fflush(nil)
        await signals.wait()
    }
}

/// Catches the given signals from the moment it is created, so one sent before ``wait()`` is not lost.
// @unchecked: the sources are only kept alive here, never touched after init.
final class SignalWaiter: @unchecked Sendable {
    private let stream: AsyncStream<Int32>
    private let sources: [any DispatchSourceSignal]

    init(_ signals: [Int32]) {
        let (stream, continuation) = AsyncStream<Int32>.makeStream()
        let queue = DispatchQueue(label: "arrayfsm.signals")
        self.stream = stream
        self.sources = signals.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { continuation.yield(number) }
            source.resume()
            return source
        }
    }

    /// Suspends until one of the signals arrives (or has arrived).
    func wait() async {
        for await _ in stream { return }
    }
}
