// ArrayFSMTools — developer tools the CLI runs: benchmarks, throwaway PostgreSQL, brokers, child
// processes, a serve on a local broker. Never linked into the service itself.
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// noida-db's Kafka service (PyPI `noida-db` 0.2.3, a real broker process) on a free loopback
/// port, with a data directory of its own that outlives restarts; removed on ``stop()``.
///
/// Two restarts: ``restartService(downFor:)`` stops the Kafka service (its state saved to the data
/// directory, its memory freed, every connection dropped) and starts it again from that directory;
/// ``restartProcess(downFor:)`` stops and starts the whole noida-db process. Measured here
/// (docs/reliability.md): the process restart loses messages it had acknowledged (acks=all) and
/// the idempotent producer's sequence state; the service restart loses neither. After a SIGKILL
/// noida-db comes back empty. Members killed with SIGKILL are never expired from their group:
/// tests that kill `serve` use the mock cluster instead.
public final class NoidaBroker: Sendable {
    /// Where clients connect: `127.0.0.1:PORT`.
    public let bootstrapServers: String
    /// The broker's data directory (`kafka.json`, `noida.log`).
    public let dataDirectory: String
    let executable: String
    let port: Int

    /// Errors finding, starting or stopping the broker.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Starts a broker; `executable` defaults to ``locate()``.
    ///
    /// A port found free can be taken before noida-db binds it (by any socket of a test running
    /// beside it: outside the ephemeral range is not outside every range a machine may configure),
    /// so a start that reports its port in use is retried on another one.
    public init(executable: String? = nil) throws {
        let executable = try executable ?? Self.locate()
        let dataDirectory = FileManager.default.temporaryDirectory
            .appendingPathComponent("arrayfsm-noida-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        var port = 0
        do {
            for attempt in 1...Self.startAttempts {
                port = try Self.freePortOutsideEphemeralRange()
                do {
                    try Self.launch(executable, port: port, dataDirectory: dataDirectory)
                    break
                } catch let failure as ChildProcess.Failure where failure.description.contains("is already in use") && attempt < Self.startAttempts {
                    continue
                }
            }
            let deadline = ContinuousClock.now + Self.startTimeout
            while !Self.accepts(port: port) {
                guard ContinuousClock.now < deadline else { throw Self.notListening(port: port, dataDirectory: dataDirectory) }
                usleep(50_000)  // not on the async pool: init is synchronous, and runs once
            }
        } catch {
            Self.remove(executable, dataDirectory: dataDirectory)
            throw error
        }
        self.executable = executable
        self.port = port
        self.dataDirectory = dataDirectory
        bootstrapServers = "127.0.0.1:\(port)"
    }

    /// `ARRAYFSM_NOIDA_DB`, or the virtual environment `scripts/noida-broker install` makes
    /// (`.venv-broker/bin/noida-db` under the current directory).
    public static func locate() throws -> String {
        let candidates = [ProcessInfo.processInfo.environment["ARRAYFSM_NOIDA_DB"],
                          FileManager.default.currentDirectoryPath + "/.venv-broker/bin/noida-db"].compactMap { $0 }
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw Failure(description: "noida-db not found at \(candidates.joined(separator: " or ")): "
                          + "run scripts/noida-broker install, or set ARRAYFSM_NOIDA_DB")
        }
        return found
    }

    /// Stops the Kafka service (state saved, connections dropped), waits `downFor`, and starts it
    /// again from the data directory, on the same port.
    public func restartService(downFor: Duration = .zero) async throws {
        try ChildProcess.run([executable, "stop", "kafka", "--data-dir", dataDirectory])
        try await Task.sleep(for: downFor)
        try ChildProcess.run([executable, "start", "kafka", "--data-dir", dataDirectory])
        try await waitUntilListening()
    }

    /// Stops the noida-db process cleanly, waits `downFor`, and starts a new one with the same
    /// data directory on the same port. Acknowledged messages can be lost (see the type's notes).
    public func restartProcess(downFor: Duration = .zero) async throws {
        try ChildProcess.run([executable, "down", "--data-dir", dataDirectory])
        try await Task.sleep(for: downFor)
        try launch()
        try await waitUntilListening()
    }

    /// Stops the broker and deletes its data.
    public func stop() {
        Self.remove(executable, dataDirectory: dataDirectory)
    }

    static func remove(_ executable: String, dataDirectory: String) {
        try? ChildProcess.run([executable, "down", "--data-dir", dataDirectory])
        try? FileManager.default.removeItem(atPath: dataDirectory)
    }

    func launch() throws {
        try Self.launch(executable, port: port, dataDirectory: dataDirectory)
    }

    /// `noida-db up` daemonizes; the port answers a moment later.
    static func launch(_ executable: String, port: Int, dataDirectory: String) throws {
        try ChildProcess.run([executable, "up", "--only", "kafka", "--kafka-port", String(port), "--data-dir", dataDirectory])
    }

    static let startAttempts = 5
    static let startTimeout = Duration.seconds(30)
    static func notListening(port: Int, dataDirectory: String) -> Failure {
        Failure(description: "noida-db did not listen on 127.0.0.1:\(port) within 30 s; see \(dataDirectory)/noida.log")
    }

    func waitUntilListening() async throws {
        let deadline = ContinuousClock.now + Self.startTimeout
        while !Self.accepts(port: port) {
            guard ContinuousClock.now < deadline else { throw Self.notListening(port: port, dataDirectory: dataDirectory) }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// A free port below Linux's ephemeral range (32768–60999 by default): during a restart's
    /// downtime no outgoing connection can be given the broker's port.
    static func freePortOutsideEphemeralRange() throws -> Int {
        for _ in 0..<100 {
            guard let socket = LoopbackSocket() else { break }
            if let port = socket.bind(port: Int.random(in: 20_000..<32_000)) { return port }
        }
        throw Failure(description: "no free port in 20000..<32000")
    }

    static func accepts(port: Int) -> Bool {
        LoopbackSocket()?.connects(port: port) ?? false
    }
}
