import ArgumentParser
import ArrayFSM
import ArrayFSMTesting
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
        await SignalWaiter.wait(for: [SIGINT, SIGTERM])
    }
}

/// Suspends until one of the given signals arrives.
enum SignalWaiter {
    static func wait(for signals: [Int32]) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let queue = DispatchQueue(label: "arrayfsm.signals")
            let resumed = ResumeOnce(continuation)
            var sources: [any DispatchSourceSignal] = []
            for number in signals {
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
                source.setEventHandler { resumed.resume() }
                source.resume()
                sources.append(source)
            }
            SignalSources.keep(sources)
        }
    }
}

/// Keeps signal sources alive for the life of the process.
private enum SignalSources {
    nonisolated(unsafe) static var sources: [any DispatchSourceSignal] = []
    static func keep(_ new: [any DispatchSourceSignal]) { sources += new }
}

/// Resumes a continuation at most once, from any thread.
private final class ResumeOnce: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<Void, Never>?
    init(_ continuation: CheckedContinuation<Void, Never>) { self.continuation = continuation }
    func resume() {
        lock.lock()
        let continuation = self.continuation
        self.continuation = nil
        lock.unlock()
        continuation?.resume()
    }
}
