// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO

/// Why a connection to PostgreSQL could not be made: where to (never with the password) and a
/// ``Reason`` a caller can act on. Its description is the one line the tools print,
/// e.g. `cannot connect to PostgreSQL at 127.0.0.1:1: connection refused`.
public struct DatabaseConnectError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, from the network up to the session.
    public enum Reason: Sendable, Equatable, CustomStringConvertible {
        /// Nothing listens at the address (or no socket file exists at the path).
        case connectionRefused
        /// The host name does not resolve.
        case hostNotFound
        /// No session within the connect timeout (a firewall dropping packets, a server that does not answer).
        case timedOut(Duration)
        /// The server refused the user or the password (SQLSTATE 28P01, 28000), or asks for a password the URL lacks.
        case authenticationFailed(String)
        /// The database named in the URL does not exist (SQLSTATE 3D000).
        case databaseDoesNotExist(String)
        /// TLS is required (`sslmode` require or verify-*) and the server does not offer it.
        case tlsNotOffered
        /// The TLS handshake failed: an untrusted certificate, a name that does not match, …
        case tlsFailed(String)
        /// The TLS settings cannot be used (an `sslrootcert` file that cannot be read).
        case tlsSettings(String)
        /// The server ended the connection with an error (too many clients, starting up, …).
        case refusedByServer(sqlState: String, message: String)
        /// Anything else, described.
        case other(String)

        public var description: String {
            switch self {
            case .connectionRefused: "connection refused (is the server running and listening there?)"
            case .hostNotFound: "host not found"
            case .timedOut(let timeout): "no session within \(timeout.wholeSeconds) s (connect timeout)"
            case .authenticationFailed(let message): "authentication failed: \(message)"
            case .databaseDoesNotExist(let name): "database \"\(name)\" does not exist"
            case .tlsNotOffered: "TLS refused: the server does not offer TLS, and sslmode requires it"
            case .tlsFailed(let message): "TLS refused: \(message)"
            case .tlsSettings(let message): "TLS settings unusable: \(message)"
            case .refusedByServer(let sqlState, let message): "the server refused the connection: \(sqlState) \(message)"
            case .other(let message): message
            }
        }
    }

    /// `host:port` or the socket path (``DatabaseURL/serverAddress``).
    public var server: String
    /// Why.
    public var reason: Reason

    public init(server: String, reason: Reason) {
        self.server = server
        self.reason = reason
    }

    public var description: String { "cannot connect to PostgreSQL at \(server): \(reason)" }

    /// The reason `error`, thrown while opening a connection to `url` (by ``DatabaseURL/checkConnection(timeout:logger:)``
    /// or by a ``PostgresClient``'s pool), stands for. The only place that reads PostgresNIO's,
    /// NIO's and NIOSSL's connection errors: every tool reports through it.
    public init(_ error: any Error, url: DatabaseURL, timeout: Duration) {
        self.init(server: url.serverAddress, reason: Self.reason(error, url: url, timeout: timeout))
    }

    static func reason(_ error: any Error, url: DatabaseURL, timeout: Duration) -> Reason {
        if let error = error as? DatabaseConnectError { return error.reason }
        if let error = error as? PSQLError {
            switch error.code {
            case .sslUnsupported:
                return .tlsNotOffered
            case .authMechanismRequiresPassword:
                return .authenticationFailed("the server asks for a password and the database URL has none")
            case .unsupportedAuthMechanism:
                return .authenticationFailed("the server asks for an authentication method PostgresNIO does not support")
            case .saslError:
                return .authenticationFailed("SCRAM exchange failed (wrong password?)")
            case .server:
                let sqlState = error.serverInfo?[.sqlState] ?? ""
                let message = error.serverInfo?[.message] ?? ""
                switch sqlState {
                case "28P01", "28000": return .authenticationFailed(message)
                case "3D000": return .databaseDoesNotExist(url.database)
                default: return .refusedByServer(sqlState: sqlState, message: message)
                }
            default:
                if let underlying = error.underlying { return reason(underlying, url: url, timeout: timeout) }
                return .other("PostgresNIO error \(error.code)")
            }
        }
        if let error = error as? NIOConnectionError {
            if error.connectionErrors.isEmpty, error.dnsAError != nil || error.dnsAAAAError != nil {
                return .hostNotFound
            }
            // Happy eyeballs tried each address: a refusal says less than any other failure.
            let reasons = error.connectionErrors.map { reason($0.error, url: url, timeout: timeout) }
            return reasons.first { $0 != .connectionRefused } ?? .connectionRefused
        }
        if let error = error as? IOError {
            switch error.errnoCode {
            case ECONNREFUSED, ENOENT: return .connectionRefused
            case ETIMEDOUT: return .timedOut(timeout)
            case EHOSTUNREACH, ENETUNREACH: return .other("no route to host")
            default: return .other(String(cString: strerror(error.errnoCode)))
            }
        }
        if let error = error as? ChannelError, case .connectTimeout = error {
            return .timedOut(timeout)
        }
        if error is SocketAddressError {
            return .hostNotFound
        }
        if let error = error as? NIOSSLExtraError, error == .failedToValidateHostname {
            return .tlsFailed("the server's certificate does not name \(url.host) (sslmode=verify-full)")
        }
        if error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError {
            let text = "\(error)"
            if text.contains("CERTIFICATE_VERIFY_FAILED") {
                let trusted = url.sslRootCert.map { $0 == "system" ? "the system's CA store" : $0 } ?? "the system's CA store"
                return .tlsFailed("the server's certificate is not signed by a CA in \(trusted)")
            }
            return .tlsFailed("handshake failed: \(text)")
        }
        if error is CancellationError {
            return .other("cancelled")
        }
        return .other("\(error)")
    }
}

extension Duration {
    /// Whole seconds, for messages.
    fileprivate var wholeSeconds: Int64 { components.seconds }
}
