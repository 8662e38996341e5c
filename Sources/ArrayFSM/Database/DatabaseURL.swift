// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
import Foundation
import NIOSSL
import PostgresNIO

/// A `postgres://user:password@host:port/database?sslmode=…` URL, turned into a client configuration.
///
/// `host` may also be given as a query item (`?host=/var/run/postgresql`) for a Unix socket.
/// `sslmode` and `sslrootcert` mean what they mean to libpq (see ``SSLMode``); TLS does not apply
/// to a Unix socket.
public struct DatabaseURL: Sendable, Hashable, CustomStringConvertible {
    public var username: String
    public var password: String?
    public var host: String
    public var port: Int
    public var database: String
    public var sslMode: SSLMode
    /// A PEM file of the CA certificates that may sign the server's certificate, or `system` for
    /// the system's CA store; nil: the system's store (where libpq would read `~/.postgresql/root.crt`).
    public var sslRootCert: String?

    /// libpq's `sslmode`: whether TLS is used, and how much of the server's certificate is checked.
    public enum SSLMode: String, Sendable, Hashable, CaseIterable {
        /// Plain text only.
        case disable
        /// As ``prefer`` (PostgresNIO cannot try plain text first, as libpq does).
        case allow
        /// TLS when the server offers it, else plain text; the certificate is not checked.
        case prefer
        /// TLS or no connection; the certificate is not checked — unless `sslrootcert` is
        /// given, which makes it ``verifyCA`` (as in libpq).
        case require
        /// TLS with a certificate signed by a trusted CA, for any host name.
        case verifyCA = "verify-ca"
        /// TLS with a certificate signed by a trusted CA that names the host connected to.
        case verifyFull = "verify-full"
    }

    /// How much of the server's certificate is checked.
    enum CertificateCheck {
        case none, chain, chainAndName
    }

    /// Errors reading a database URL. The description never contains the password.
    public struct ParseError: Error, CustomStringConvertible {
        public var description: String
    }

    public init(_ string: String) throws(ParseError) {
        guard let components = URLComponents(string: string),
            let scheme = components.scheme, ["postgres", "postgresql"].contains(scheme)
        else {
            throw ParseError(description: "database URL must look like postgres://user:password@host:5432/database, got '\(Self.redacted(string))'")
        }
        let items = Dictionary((components.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { $1 })
        self.username = components.user ?? items["user"] ?? "postgres"
        self.password = components.password ?? items["password"]
        // An IPv6 address is bracketed in a URL, not in a socket address.
        let urlHost = components.host.map { $0.hasPrefix("[") && $0.hasSuffix("]") ? String($0.dropFirst().dropLast()) : $0 }
        self.host = items["host"] ?? urlHost.flatMap { $0.isEmpty ? nil : $0 } ?? "127.0.0.1"
        if let port = components.port, !(1...65535).contains(port) {
            throw ParseError(description: "port must be a number from 1 to 65535, got \(port) in '\(Self.redacted(string))'")
        }
        if let text = items["port"], components.port == nil {
            guard let port = Int(text), (1...65535).contains(port) else {
                throw ParseError(description: "port must be a number from 1 to 65535, got '\(text)' in '\(Self.redacted(string))'")
            }
            self.port = port
        } else {
            self.port = components.port ?? 5432
        }
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        self.database = path.isEmpty ? username : path
        let mode = items["sslmode"] ?? SSLMode.prefer.rawValue
        guard let sslMode = SSLMode(rawValue: mode) else {
            throw ParseError(description: "sslmode must be one of \(SSLMode.allCases.map(\.rawValue).joined(separator: ", ")), got '\(mode)'")
        }
        self.sslMode = sslMode
        self.sslRootCert = items["sslrootcert"].flatMap { $0.isEmpty ? nil : $0 }
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
        var items: [URLQueryItem] = []
        if isUnixSocket {
            components.host = ""
            items.append(URLQueryItem(name: "host", value: host))
        } else if host.contains(":") {
            components.percentEncodedHost = "[\(host)]"
        } else {
            components.host = host
        }
        components.port = port
        components.path = "/" + database
        if sslMode != .prefer { items.append(URLQueryItem(name: "sslmode", value: sslMode.rawValue)) }
        if let sslRootCert { items.append(URLQueryItem(name: "sslrootcert", value: sslRootCert)) }
        components.queryItems = items.isEmpty ? nil : items
        return components.string ?? ""
    }

    /// The URL without its password, for logs and errors.
    public var description: String { Self.redacted(string) }

    /// Where the server is, for messages: `host:port`, or the socket's path.
    public var serverAddress: String {
        if isUnixSocket { return unixSocketPath }
        return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    var isUnixSocket: Bool { host.hasPrefix("/") }

    var unixSocketPath: String { host.hasSuffix(".s.PGSQL.\(port)") ? host : "\(host)/.s.PGSQL.\(port)" }

    /// Whether a connection may be made in plain text although TLS was asked for when offered
    /// (`sslmode=prefer`, the default, or `allow`, over TCP).
    public var mayFallBackToPlainText: Bool {
        !isUnixSocket && (sslMode == .prefer || sslMode == .allow)
    }

    var certificateCheck: CertificateCheck {
        switch sslMode {
        case .disable, .allow, .prefer: .none
        case .require: sslRootCert == nil ? .none : .chain
        case .verifyCA: .chain
        case .verifyFull: .chainAndName
        }
    }

    /// The TLS settings `sslmode` and `sslrootcert` ask for; nil when no TLS is used.
    var tlsConfiguration: TLSConfiguration? {
        guard sslMode != .disable, !isUnixSocket else { return nil }
        var tls = TLSConfiguration.makeClientConfiguration()
        switch certificateCheck {
        case .none: tls.certificateVerification = .none
        case .chain: tls.certificateVerification = .noHostnameVerification
        case .chainAndName: tls.certificateVerification = .fullVerification
        }
        if let sslRootCert, sslRootCert != "system" {
            tls.trustRoots = .file(sslRootCert)
        }
        return tls
    }

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

    /// How long a new connection may take, TCP connect to authenticated session, unless a tool is told otherwise.
    public static let defaultConnectTimeout: Duration = .seconds(10)

    /// A client configuration for this URL; `parameters` are set on every connection at startup
    /// (`work_mem`, `application_name`, … — any setting a session may change). Each new
    /// connection may take `connectTimeout`.
    public func configuration(
        maxConnections: Int = 8, parameters: [(String, String)] = [], connectTimeout: Duration = defaultConnectTimeout
    ) throws -> PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        if isUnixSocket {
            configuration = .init(unixSocketPath: unixSocketPath, username: username, password: password, database: database)
        } else {
            let tls: PostgresClient.Configuration.TLS
            switch (sslMode, tlsConfiguration) {
            case (.disable, _), (_, nil): tls = .disable
            case (.allow, let settings?), (.prefer, let settings?): tls = .prefer(settings)
            case (_, let settings?): tls = .require(settings)
            }
            configuration = .init(host: host, port: port, username: username, password: password, database: database, tls: tls)
        }
        configuration.options.maximumConnections = maxConnections
        configuration.options.minimumConnections = 0
        configuration.options.additionalStartupParameters = parameters
        configuration.options.connectTimeout = connectTimeout
        return configuration
    }

    /// `string` with any password replaced by `***` — also when it is not a URL that parses:
    /// the text between the first `:` after the scheme and the last `@` is taken for one (too
    /// much is hidden rather than too little), and so is the value of a `password=` item.
    static func redacted(_ string: String) -> String {
        var text = string
        let authorityStart = text.range(of: "://")?.upperBound ?? text.startIndex
        if let at = text[authorityStart...].lastIndex(of: "@"),
            let colon = text[authorityStart..<at].firstIndex(of: ":")
        {
            text.replaceSubrange(text.index(after: colon)..<at, with: "***")
        }
        var searchFrom = text.startIndex
        while let item = text.range(of: "password=", options: .caseInsensitive, range: searchFrom..<text.endIndex) {
            let end = text[item.upperBound...].firstIndex { $0 == "&" || $0 == "#" } ?? text.endIndex
            text.replaceSubrange(item.upperBound..<end, with: "***")
            searchFrom = text.index(item.upperBound, offsetBy: 3)
        }
        return text
    }
}
