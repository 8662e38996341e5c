// ArrayFSMTools — developer tools the CLI runs: benchmarks, throwaway PostgreSQL, brokers, child
// processes, a serve on a local broker. Never linked into the service itself.
import Foundation

/// HTTP GETs of a local endpoint (serve's /metrics, /health, /ready), by Python's urllib in a
/// child process: the status line's code, then the body.
public enum HTTPGet {
    /// The status code on the first line, the body after it.
    public static func response(port: Int, path: String) async throws -> String {
        let curl = try ChildProcess(["/usr/bin/env", "python3", "-c", """
            import sys, urllib.request, urllib.error
            try:
                r = urllib.request.urlopen("http://127.0.0.1:\(port)\(path)", timeout=10)
                print(r.status); sys.stdout.write(r.read().decode())
            except urllib.error.HTTPError as e:
                print(e.code); sys.stdout.write(e.read().decode())
            """])
        _ = await curl.wait(timeout: .seconds(20))
        return curl.output
    }

    /// The status code (0: no answer).
    public static func status(port: Int, path: String) async throws -> Int {
        Int(try await response(port: port, path: path).prefix { $0 != "\n" }) ?? 0
    }

    /// The body.
    public static func text(port: Int, path: String) async throws -> String {
        String(try await response(port: port, path: path).drop { $0 != "\n" }.dropFirst())
    }
}
