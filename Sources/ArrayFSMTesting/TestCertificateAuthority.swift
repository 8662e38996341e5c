// ArrayFSMTesting — what only tests import: test databases, row readers, schema checks, a test CA.
import ArrayFSMTools
import Foundation

/// A certificate authority of its own in a temporary directory, made with the `openssl` command,
/// that issues server certificates: for tests of TLS to PostgreSQL (``ThrowawayPostgres/ServerTLS``).
public struct TestCertificateAuthority: Sendable {
    /// The directory holding the CA's and the issued files; ``remove()`` deletes it.
    public let directory: String
    /// The CA's certificate (PEM): what a client trusts (`sslrootcert`).
    public let certificateFile: String
    let keyFile: String

    /// Makes a new CA (a P-256 key and a self-signed certificate valid for two days).
    public init(name: String = "arrayfsm test CA") throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("arrayfsm-ca-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        certificateFile = directory + "/ca.crt"
        keyFile = directory + "/ca.key"
        try ChildProcess.run([
            "/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", keyFile, "-out", certificateFile, "-days", "2", "-subj", "/CN=\(name)",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ])
    }

    /// Issues a server certificate whose subject alternative names are `dnsNames` (and `ipAddresses`).
    public func issueServerCertificate(dnsNames: [String], ipAddresses: [String] = []) throws -> ThrowawayPostgres.ServerTLS {
        let base = directory + "/server-\(UInt32.random(in: 0...UInt32.max))"
        let names = dnsNames.map { "DNS:\($0)" } + ipAddresses.map { "IP:\($0)" }
        try "subjectAltName=\(names.joined(separator: ","))\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            .write(toFile: base + ".ext", atomically: true, encoding: .utf8)
        try ChildProcess.run([
            "/usr/bin/openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", base + ".key", "-out", base + ".csr", "-subj", "/CN=\(dnsNames.first ?? ipAddresses.first ?? "server")",
        ])
        try ChildProcess.run([
            "/usr/bin/openssl", "x509", "-req", "-in", base + ".csr", "-CA", certificateFile, "-CAkey", keyFile,
            "-CAcreateserial", "-out", base + ".crt", "-days", "2", "-extfile", base + ".ext",
        ])
        return ThrowawayPostgres.ServerTLS(certificateFile: base + ".crt", keyFile: base + ".key")
    }

    /// Deletes the directory.
    public func remove() {
        try? FileManager.default.removeItem(atPath: directory)
    }
}
