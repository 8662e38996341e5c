// ArrayFSMTools — developer tools the CLI runs: benchmarks, throwaway PostgreSQL, brokers, child
// processes, a serve on a local broker. Never linked into the service itself.
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with posix_spawn, for tests that need a real process to signal or kill.
///
/// Not Foundation's `Process`: its `waitUntilExit` can hang on Linux when called from the main
/// actor of an async program. Output goes to a file, not a pipe: a daemon the child forks (as
/// `pg_ctl start` does) inherits the descriptors and would hold a pipe open forever.
public final class ChildProcess: Sendable {
    public let pid: pid_t
    /// Where the child's stdout and stderr go.
    public let outputPath: String

    /// Errors starting or waiting for a child.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Starts `argv[0]` with `argv`; `environment` entries are added to this process's environment.
    public init(_ argv: [String], environment: [String: String] = [:], outputPath: String? = nil) throws {
        let outputPath = outputPath
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("arrayfsm-child-\(UUID().uuidString).log").path
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        var cEnvironment = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        var cArguments = argv.map { strdup($0) } + [nil]
        defer {
            cArguments.forEach { free($0) }
            cEnvironment.forEach { free($0) }
        }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, argv[0], &actions, nil, &cArguments, &cEnvironment)
        guard spawned == 0 else {
            throw Failure(description: "could not start \(argv[0]): \(String(cString: strerror(spawned)))")
        }
        self.pid = pid
        self.outputPath = outputPath
    }

    /// Sends a signal.
    public func signal(_ number: Int32) {
        kill(pid, number)
    }

    /// What the child wrote so far.
    public var output: String {
        (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
    }

    /// Waits for the child to end; returns its exit code, or 128 + signal if a signal ended it.
    public func wait() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// The exit code if the child has ended (reaping it), nil while it runs. Call once it returned a code: not again.
    public func exitCodeIfEnded() -> Int32? {
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// Waits up to `timeout` without blocking a thread of the cooperative pool for long; nil on timeout.
    public func wait(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid {
                return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    /// Runs a command to completion; throws with its output if it fails.
    public static func run(_ argv: [String]) throws {
        let child = try ChildProcess(argv)
        defer { try? FileManager.default.removeItem(atPath: child.outputPath) }
        let code = child.wait()
        guard code == 0 else {
            throw Failure(description: "\(argv.joined(separator: " ")) failed (exit \(code)): \(child.output)")
        }
    }
}
