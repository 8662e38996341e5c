// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
import Logging
import NIOCore
import NIOSSL
import PostgresNIO

extension DatabaseURL {
    /// Opens one connection and closes it again, so that a tool says at once, in one line, why
    /// PostgreSQL cannot be reached — instead of a pool retrying until its circuit breaker trips
    /// (a minute, and an error that names neither the server nor the cause). Once connected, warns
    /// when `sslmode` lets connections fall back to plain text.
    public func checkConnection(timeout: Duration = defaultConnectTimeout, logger: Logger) async throws(DatabaseConnectError) {
        let configuration = try connectionConfiguration(timeout: timeout)
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
        } catch {
            throw DatabaseConnectError(error, url: self, timeout: timeout)
        }
        try? await connection.close()
        if mayFallBackToPlainText {
            logger.warning("sslmode=\(sslMode.rawValue): the connections to PostgreSQL at \(serverAddress) fall back to plain text when the server offers no TLS; set sslmode=verify-full (or require) to refuse that")
        }
    }

    /// A single connection's configuration, with the TLS settings and timeout the pool's connections get.
    func connectionConfiguration(timeout: Duration) throws(DatabaseConnectError) -> PostgresConnection.Configuration {
        var configuration: PostgresConnection.Configuration
        if isUnixSocket {
            configuration = .init(unixSocketPath: unixSocketPath, username: username, password: password, database: database)
        } else {
            var tls = PostgresConnection.Configuration.TLS.disable
            if let settings = tlsConfiguration {
                let context: NIOSSLContext
                do {
                    context = try NIOSSLContext(configuration: settings)
                } catch {
                    throw DatabaseConnectError(
                        server: serverAddress,
                        reason: .tlsSettings("cannot load sslrootcert \(sslRootCert ?? "(system store)"): \(error)"))
                }
                tls = sslMode == .prefer || sslMode == .allow ? .prefer(context) : .require(context)
            }
            configuration = .init(host: host, port: port, username: username, password: password, database: database, tls: tls)
        }
        configuration.options.connectTimeout = TimeAmount(timeout)
        return configuration
    }

    /// Checks the connection (``checkConnection(timeout:logger:)``), then runs a ``PostgresClient``
    /// for this URL while `body` uses it, and shuts it down. `parameters`: session settings of
    /// every connection (see ``configuration(maxConnections:parameters:connectTimeout:)``).
    public func withClient<Result: Sendable>(
        maxConnections: Int = 8,
        parameters: [(String, String)] = [],
        connectTimeout: Duration = defaultConnectTimeout,
        logger: Logger,
        _ body: (PostgresClient) async throws -> Result
    ) async throws -> Result {
        try await checkConnection(timeout: connectTimeout, logger: logger)
        let client = PostgresClient(
            configuration: try configuration(maxConnections: maxConnections, parameters: parameters, connectTimeout: connectTimeout),
            backgroundLogger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }
}
