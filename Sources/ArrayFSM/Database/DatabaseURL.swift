import Foundation
import NIOSSL
import PostgresNIO

/// A `postgres://user:password@host:port/database?sslmode=…` URL, turned into a client configuration.
///
/// `host` may also be given as a query item (`?host=/var/run/postgresql`) for a Unix socket.
/// `sslmode` is `disable`, `prefer` (the default) or `require`.
public struct DatabaseURL: Sendable, Hashable, CustomStringConvertible {
    public var username: String
    public var password: String?
    public var host: String
    public var port: Int
    public var database: String
    public var sslMode: String

    /// Errors reading a database URL.
    public struct ParseError: Error, CustomStringConvertible {
        public var description: String
    }

    public init(_ string: String) throws {
        guard let components = URLComponents(string: string),
            let scheme = components.scheme, ["postgres", "postgresql"].contains(scheme)
        else {
            throw ParseError(description: "database URL must look like postgres://user:password@host:5432/database, got '\(Self.redacted(string))'")
        }
        let items = Dictionary((components.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { $1 })
        self.username = components.user ?? items["user"] ?? "postgres"
        self.password = components.password ?? items["password"]
        self.host = items["host"] ?? components.host.flatMap { $0.isEmpty ? nil : $0 } ?? "127.0.0.1"
        self.port = components.port ?? items["port"].flatMap(Int.init) ?? 5432
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        self.database = path.isEmpty ? username : path
        self.sslMode = items["sslmode"] ?? "prefer"
        guard ["disable", "prefer", "require", "allow"].contains(sslMode) else {
            throw ParseError(description: "sslmode must be disable, prefer or require, got '\(sslMode)'")
        }
    }

    /// The same server with another database name.
    public func withDatabase(_ name: String) -> DatabaseURL {
        var copy = self
        copy.database = name
        return copy
    }

    /// The URL as text, with the password.
    public var string: String {
        var components = URLComponents()
        components.scheme = "postgres"
        components.user = username
        components.password = password
        if host.hasPrefix("/") {
            components.host = ""
            components.queryItems = [URLQueryItem(name: "host", value: host)]
        } else {
            components.host = host
        }
        components.port = port
        components.path = "/" + database
        if sslMode != "prefer" {
            components.queryItems = (components.queryItems ?? []) + [URLQueryItem(name: "sslmode", value: sslMode)]
        }
        return components.string ?? ""
    }

    /// The URL without its password, for logs.
    public var description: String { Self.redacted(string) }

    /// The `work_mem` of connections that apply command batches (``batchParameters(workMem:)``).
    public static let batchWorkMem = "64MB"

    /// Session parameters for connections that apply command batches. Their statements hash,
    /// sort and aggregate whole batches (100 commands × 1,000 ids: a status read's grouping, an
    /// update's join with its bound ids, the rows it returns); at PostgreSQL's default `work_mem`
    /// of 4MB each of those spilled to temporary files. Memory is taken only by the statements
    /// that need it, per connection.
    ///
    /// JIT compilation is off: no statement of a batch runs long enough per row to repay it, and
    /// the planner's guesses for range joins over bound ids (`IDRuns`: millions of rows for what
    /// is 100,000) crossed `jit_above_cost`, spending 150 ms compiling a 30 ms scan.
    public static func batchParameters(workMem: String = batchWorkMem) -> [(String, String)] {
        [("work_mem", workMem), ("jit", "off")]
    }

    /// A client configuration for this URL; `parameters` are set on every connection at startup
    /// (`work_mem`, `application_name`, … — any setting a session may change).
    public func configuration(maxConnections: Int = 8, parameters: [(String, String)] = []) throws -> PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        if host.hasPrefix("/") {
            let socket = host.hasSuffix(".s.PGSQL.\(port)") ? host : "\(host)/.s.PGSQL.\(port)"
            configuration = .init(unixSocketPath: socket, username: username, password: password, database: database)
        } else {
            let tls: PostgresClient.Configuration.TLS
            switch sslMode {
            case "disable": tls = .disable
            case "require": tls = .require(TLSConfiguration.makeClientConfiguration())
            default: tls = .prefer(TLSConfiguration.makeClientConfiguration())
            }
            configuration = .init(host: host, port: port, username: username, password: password, database: database, tls: tls)
        }
        configuration.options.maximumConnections = maxConnections
        configuration.options.minimumConnections = 0
        configuration.options.additionalStartupParameters = parameters
        return configuration
    }

    static func redacted(_ string: String) -> String {
        guard var components = URLComponents(string: string), components.password != nil else { return string }
        components.password = "***"
        return components.string ?? string
    }
}
