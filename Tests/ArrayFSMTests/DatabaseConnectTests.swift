@testable import ArrayFSM
import ArrayFSMTesting
import ArrayFSMTools
import Foundation
import PostgresNIO
import Testing

/// Reaching PostgreSQL: the URL's TLS settings, and one typed, password-free reason when it fails.
@Suite struct DatabaseConnectTests {
    let logger = TestPostgres.logger

    /// The reason `url` cannot be connected to, or nil when it can.
    func failure(_ url: DatabaseURL, timeout: Duration = .seconds(10)) async -> DatabaseConnectError? {
        do {
            try await url.checkConnection(timeout: timeout, logger: logger)
            return nil
        } catch {
            return error
        }
    }

    @Test(arguments: [
        "postgres://u:se cret@h:x/db", "postgres://u:secret@[::1/db", "postgres://u:secret@h:x/db",
        "postgres://u:secret@h/db?sslmode=bogus", "postgres://u@h/db?password=secret&sslmode=bogus", "mysql://u:secret@h/db",
        "u:secret@h/db", "postgres://u:sec@ret@h:99999999/db", "postgres://u:secret@h/db?port=x",
    ])
    func aURLThatDoesNotParseIsReportedWithoutItsPassword(_ text: String) {
        #expect(throws: DatabaseURL.ParseError.self) { try DatabaseURL(text) }
        do {
            _ = try DatabaseURL(text)
        } catch {
            #expect(!error.description.contains("secret"), "\(error)")
            #expect(!error.description.contains("ret@"), "\(error)")
        }
    }

    @Test func theURLKeepsItsTLSSettingsAndHidesItsPassword() throws {
        let url = try DatabaseURL("postgres://arrayfsm:p%40ss-secret@db.example:6432/arrayfsm?sslmode=verify-full&sslrootcert=/etc/arrayfsm/ca.pem")
        #expect(url.password == "p@ss-secret")
        #expect(url.sslMode == .verifyFull)
        #expect(url.sslRootCert == "/etc/arrayfsm/ca.pem")
        #expect(try DatabaseURL(url.string) == url)
        #expect(url.description == "postgres://arrayfsm:***@db.example:6432/arrayfsm?sslmode=verify-full&sslrootcert=/etc/arrayfsm/ca.pem")
        #expect(url.serverAddress == "db.example:6432")
        let ipv6 = try DatabaseURL("postgres://u@[::1]:5433/d")
        #expect(ipv6.host == "::1")
        #expect(ipv6.serverAddress == "[::1]:5433")
        #expect(try DatabaseURL(ipv6.string) == ipv6)
        #expect(try DatabaseURL("postgres://u@/d?host=/run/postgresql").serverAddress == "/run/postgresql/.s.PGSQL.5432")
        // libpq's checks: prefer and require encrypt without authenticating the server, unless
        // require is given a root certificate; verify-ca checks the chain; verify-full the name too.
        #expect(try DatabaseURL("postgres://h/d").sslMode == .prefer)
        #expect(try DatabaseURL("postgres://h/d").mayFallBackToPlainText)
        #expect(try DatabaseURL("postgres://h/d?sslmode=require").certificateCheck == .none)
        #expect(try DatabaseURL("postgres://h/d?sslmode=require&sslrootcert=/ca.pem").certificateCheck == .chain)
        #expect(try DatabaseURL("postgres://h/d?sslmode=verify-ca").certificateCheck == .chain)
        #expect(try DatabaseURL("postgres://h/d?sslmode=verify-full").certificateCheck == .chainAndName)
        #expect(try DatabaseURL("postgres://h/d?sslmode=disable").tlsConfiguration == nil)
        #expect(try DatabaseURL("postgres://u@/d?host=/run/postgresql&sslmode=require").tlsConfiguration == nil, "no TLS on a Unix socket")
    }

    @Test func nothingListeningIsRefusedAtOnce() async throws {
        let port = try ThrowawayPostgres.freePort()
        let started = ContinuousClock.now
        let error = try #require(await failure(try DatabaseURL("postgres://nobody:secret@127.0.0.1:\(port)/x")))
        #expect(error.reason == .connectionRefused)
        #expect(error.description == "cannot connect to PostgreSQL at 127.0.0.1:\(port): connection refused (is the server running and listening there?)")
        // Refused, not waited out: well under the 10 s connect timeout even on a loaded machine.
        #expect(ContinuousClock.now - started < .seconds(8))
        let socket = try #require(await failure(try DatabaseURL("postgres://nobody@/x?host=/nonexistent-dir&port=\(port)")))
        #expect(socket.reason == .connectionRefused)
        #expect(socket.server == "/nonexistent-dir/.s.PGSQL.\(port)")
    }

    @Test func aHostThatDoesNotResolveIsNotFound() async throws {
        let error = try #require(await failure(try DatabaseURL("postgres://nobody:secret@no-such-host.invalid:5432/x")))
        #expect(error.reason == .hostNotFound)
        #expect(error.server == "no-such-host.invalid:5432")
    }

    @Test func aServerThatNeverAnswersTimesOut() async throws {
        let listener = try SilentListener()
        let started = ContinuousClock.now
        let error = try #require(await failure(try DatabaseURL("postgres://nobody:secret@127.0.0.1:\(listener.port)/x?sslmode=disable"), timeout: .seconds(1)))
        #expect(error.reason == .timedOut(.seconds(1)))
        // The 1 s given, not the 10 s default: the bound leaves room for a loaded machine.
        #expect(ContinuousClock.now - started < .seconds(9))
        #expect(error.description.hasSuffix("no session within 1 s (connect timeout)"))
    }

    @Test func requireAgainstAServerWithoutTLSIsRefused() async throws {
        var url = try await TestPostgres.server().url
        url.sslMode = .require
        let error = try #require(await failure(url))
        #expect(error.reason == .tlsNotOffered)
        url.sslMode = .prefer
        #expect(await failure(url) == nil, "prefer falls back to plain text")
    }

    /// One cluster with a password and a certificate from a CA of the test's own, named `localhost`.
    @Test func verifiedTLSConnectsAndEveryRefusalHasItsReason() async throws {
        let authority = try TestCertificateAuthority()
        defer { authority.remove() }
        let stranger = try TestCertificateAuthority(name: "some other CA")
        defer { stranger.remove() }
        let cluster = try ThrowawayPostgres(password: "pw-secret", tls: try authority.issueServerCertificate(dnsNames: ["localhost"]))
        defer { cluster.stop() }

        var url = cluster.url
        url.host = "localhost"
        url.sslMode = .verifyFull
        url.sslRootCert = authority.certificateFile
        #expect(await failure(url) == nil)
        try await url.withClient(maxConnections: 1, logger: logger) { client in
            for try await ssl in try await client.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", logger: logger).decode(Bool.self) {
                #expect(ssl, "the session is encrypted")
            }
        }

        var wrongCA = url
        wrongCA.sslRootCert = stranger.certificateFile
        let untrusted = try #require(await failure(wrongCA))
        #expect(untrusted.reason == .tlsFailed("the server's certificate is not signed by a CA in \(stranger.certificateFile)"))
        var verifyCA = wrongCA
        verifyCA.sslMode = .verifyCA
        #expect(await failure(verifyCA)?.reason == untrusted.reason)

        var byAddress = url
        byAddress.host = "127.0.0.1"
        #expect(await failure(byAddress)?.reason == .tlsFailed("the server's certificate does not name 127.0.0.1 (sslmode=verify-full)"))
        byAddress.sslMode = .verifyCA
        #expect(await failure(byAddress) == nil, "verify-ca checks the chain, not the name")
        byAddress.sslMode = .require
        byAddress.sslRootCert = nil
        #expect(await failure(byAddress) == nil, "require encrypts without checking the certificate")

        var missingCA = url
        missingCA.sslRootCert = "/nonexistent/ca.pem"
        guard case .tlsSettings? = await failure(missingCA)?.reason else {
            Issue.record("an unreadable sslrootcert is a settings error")
            return
        }

        var wrongPassword = url
        wrongPassword.password = "not-the-secret"
        let denied = try #require(await failure(wrongPassword))
        #expect(denied.reason == .authenticationFailed("password authentication failed for user \"postgres\""))
        #expect(!denied.description.contains("secret"))
        var noPassword = url
        noPassword.password = nil
        guard case .authenticationFailed? = await failure(noPassword)?.reason else {
            Issue.record("a missing password is an authentication failure")
            return
        }

        let missing = try #require(await failure(url.withDatabase("nope")))
        #expect(missing.reason == .databaseDoesNotExist("nope"))
        #expect(missing.description == "cannot connect to PostgreSQL at localhost:\(url.port): database \"nope\" does not exist")
    }
}
