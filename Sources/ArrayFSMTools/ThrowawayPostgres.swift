// ArrayFSMTools — developer tools the CLI runs: benchmarks, throwaway PostgreSQL, brokers, child
// processes, a serve on a local broker. Never linked into the service itself.
import ArrayFSM
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A PostgreSQL cluster of its own in a temporary directory, on a free loopback port, removed on ``stop()``.
///
/// Used by the tests when `DATABASE_URL` is unset, by `arrayfsm local-postgres`, and by the
/// benchmarks. `initdb` refuses to run as root, so as root the cluster runs as the `postgres` user.
public final class ThrowawayPostgres: Sendable {
    /// Where clients connect (user `postgres`, database `postgres`, `sslmode=disable`; trust
    /// authentication, or the password given to `init`).
    public let url: DatabaseURL
    /// The cluster's directory (data in `data/`, server log in `log`).
    public let directory: String
    /// The server's command-line options (kept for restarts).
    let options: String

    /// Server settings for a cluster whose data is thrown away: no fsync, no synchronous commit.
    /// Benchmarks that claim durability must not use them.
    public static let fastSettings = ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]

    /// Errors starting the cluster, with the command's output.
    public struct StartError: Error, CustomStringConvertible {
        public var description: String
    }

    /// A server certificate and its key (PEM files), for a cluster that offers TLS.
    public struct ServerTLS: Sendable {
        public var certificateFile: String
        public var keyFile: String

        public init(certificateFile: String, keyFile: String) {
            self.certificateFile = certificateFile
            self.keyFile = keyFile
        }
    }

    /// Creates and starts a cluster; `settings` are extra `name=value` server settings. With a
    /// `password`, TCP clients must give it (SCRAM; the Unix socket stays trusted); with `tls`,
    /// the server runs with `ssl=on` and that certificate (plain text is still accepted).
    public init(settings: [String] = ThrowawayPostgres.fastSettings, password: String? = nil, tls: ServerTLS? = nil) throws {
        let binaries = try Self.findBinaries()
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("arrayfsm-pg-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let runAsPostgres = getuid() == 0
        if runAsPostgres {
            try Self.run("/bin/chown", ["postgres:postgres", directory])
        }
        let port = try Self.freePort()
        var initdb = ["-D", directory + "/data", "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]
        if let password {
            let file = directory + "/password"
            try password.write(toFile: file, atomically: true, encoding: .utf8)
            initdb += ["--auth-host=scram-sha-256", "--pwfile=" + file]
        }
        try Self.run(binaries + "/initdb", initdb, asPostgres: runAsPostgres)
        try? FileManager.default.removeItem(atPath: directory + "/password")
        // The parallel test suite runs dozens of serve processes, each with its own pool, on one
        // server: at 200 connections a serve started late was refused (53300 too many clients).
        var options = "-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c max_connections=500"
        if let tls {
            // The server reads its key only if no one else can (0600, owned by the server's user).
            for (source, name) in [(tls.certificateFile, "server.crt"), (tls.keyFile, "server.key")] {
                try FileManager.default.copyItem(atPath: source, toPath: directory + "/" + name)
                try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: directory + "/" + name)
                if runAsPostgres { try Self.run("/bin/chown", ["postgres:postgres", directory + "/" + name]) }
            }
            options += " -c ssl=on -c ssl_cert_file=\(directory)/server.crt -c ssl_key_file=\(directory)/server.key"
        }
        for setting in settings { options += " -c \(setting)" }
        try Self.run(binaries + "/pg_ctl", ["-D", directory + "/data", "-o", options, "-l", directory + "/log", "-w", "-t", "60", "start"],
                     asPostgres: runAsPostgres)
        self.directory = directory
        self.options = options
        var url = try DatabaseURL("postgres://postgres@127.0.0.1:\(port)/postgres?sslmode=disable")
        url.password = password
        self.url = url
    }

    /// Restarts the server with a fast shutdown (clients are disconnected, transactions in flight
    /// roll back), on the same port: what an operator's `pg_ctl restart -m fast` does.
    public func restart() throws {
        try Self.run(try Self.findBinaries() + "/pg_ctl",
                     ["-D", directory + "/data", "-o", options, "-l", directory + "/log", "-m", "fast", "-w", "-t", "60", "restart"],
                     asPostgres: getuid() == 0)
    }

    /// Stops the server (fast shutdown: clients are disconnected) and keeps its data, so that
    /// ``startServer()`` brings it back on the same port: a database that goes away and returns.
    public func stopServer() throws {
        try Self.run(try Self.findBinaries() + "/pg_ctl", ["-D", directory + "/data", "-m", "fast", "-w", "-t", "60", "stop"],
                     asPostgres: getuid() == 0)
    }

    /// Starts the server stopped by ``stopServer()`` again.
    public func startServer() throws {
        try Self.run(try Self.findBinaries() + "/pg_ctl",
                     ["-D", directory + "/data", "-o", options, "-l", directory + "/log", "-w", "-t", "60", "start"],
                     asPostgres: getuid() == 0)
    }

    /// Stops the server at once and deletes the directory.
    public func stop() {
        if let binaries = try? Self.findBinaries() {
            try? Self.run(binaries + "/pg_ctl", ["-D", directory + "/data", "-m", "immediate", "-w", "stop"],
                          asPostgres: getuid() == 0)
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The directory holding initdb and pg_ctl: from PATH, else Debian's /usr/lib/postgresql/<newest>/bin.
    static func findBinaries() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for dir in path.split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(dir)/initdb") {
            return String(dir)
        }
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init).sorted()
        if let newest = versions.last, FileManager.default.isExecutableFile(atPath: "\(root)/\(newest)/bin/initdb") {
            return "\(root)/\(newest)/bin"
        }
        throw StartError(description: "PostgreSQL's initdb was not found on PATH or in /usr/lib/postgresql/*/bin; install it with `apt-get install postgresql`")
    }

    /// A TCP port on 127.0.0.1 that nothing listens on right now.
    public static func freePort() throws -> Int {
        guard let port = LoopbackSocket()?.bind(port: 0) else {
            throw StartError(description: "could not bind a socket on 127.0.0.1 to find a free port")
        }
        return port
    }

    static func run(_ executable: String, _ arguments: [String], asPostgres: Bool = false) throws {
        let argv = asPostgres ? ["/usr/sbin/runuser", "-u", "postgres", "--", executable] + arguments : [executable] + arguments
        do {
            try ChildProcess.run(argv)
        } catch {
            throw StartError(description: "\(error)")
        }
    }
}
