// arrayfsm — the command line: argument parsing and wiring of the modules; no logic of its own.
import ArgumentParser
import ArrayFSM
import ArrayFSMService
import ArrayFSMTools
import Foundation
import Logging

/// Reads a flag's `ARRAYFSM_*` environment twin when the flag was not given.
enum Environment {
    static func value(_ flag: String?, _ name: String) -> String? {
        if let flag { return flag }
        let value = ProcessInfo.processInfo.environment[name]
        return value?.isEmpty == false ? value : nil
    }

    /// The database URL from `--database-url` or `ARRAYFSM_DATABASE_URL`.
    static func databaseURL(_ flag: String?) throws -> DatabaseURL {
        guard let text = value(flag, "ARRAYFSM_DATABASE_URL") else {
            throw ValidationError("no database: pass --database-url postgres://user@host:5432/db or set ARRAYFSM_DATABASE_URL")
        }
        // Its error never contains the password; the command reports it in one line.
        return try DatabaseURL(text)
    }

    /// How long a tool waits for a PostgreSQL connection: `--connect-timeout-seconds` or
    /// `ARRAYFSM_CONNECT_TIMEOUT_SECONDS`, default ``DatabaseURL/defaultConnectTimeout``.
    static func connectTimeout(_ flag: Int?) throws -> Duration {
        guard let seconds = try int(flag, "ARRAYFSM_CONNECT_TIMEOUT_SECONDS") else { return DatabaseURL.defaultConnectTimeout }
        guard seconds >= 1 else { throw ValidationError("--connect-timeout-seconds must be at least 1, got \(seconds)") }
        return .seconds(seconds)
    }

    /// An integer flag or its environment twin.
    static func int(_ flag: Int?, _ name: String) throws -> Int? {
        if let flag { return flag }
        guard let text = value(nil, name) else { return nil }
        guard let number = Int(text) else { throw ValidationError("\(name) must be an integer, got '\(text)'") }
        return number
    }

    static func int32(_ flag: Int32?, _ name: String) throws -> Int32? {
        try int(flag.map(Int.init), name).map { Int32(clamping: $0) }
    }

    /// librdkafka properties from `--kafka name=value` flags and `ARRAYFSM_KAFKA_NAME` variables.
    static func kafkaProperties(_ flags: [String]) throws -> [String: String] {
        do {
            return try ServeConfiguration.kafkaProperties(flags: flags, environment: ProcessInfo.processInfo.environment)
        } catch {
            throw ValidationError(error.description)
        }
    }

    /// The database from `--database-url` / `ARRAYFSM_DATABASE_URL`, or else a throwaway durable
    /// cluster (returned so the caller stops it).
    static func databaseOrThrowaway(_ flag: String?) throws -> (DatabaseURL, ThrowawayPostgres?) {
        if let given = value(flag, "ARRAYFSM_DATABASE_URL") {
            return (try databaseURL(given), nil)
        }
        let cluster = try ThrowawayPostgres(settings: ["shared_buffers=512MB"])
        return (cluster.url, cluster)
    }

    /// A stderr logger at `--log-level` / `ARRAYFSM_LOG_LEVEL` (default info).
    static func logger(_ label: String, level: String?) -> Logger {
        var logger = Logger(label: label) { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = value(level, "ARRAYFSM_LOG_LEVEL").flatMap(Logger.Level.init(rawValue:)) ?? .info
        return logger
    }
}

/// `--connect-timeout-seconds`, shared by every command that connects to PostgreSQL.
struct ConnectOptions: ParsableArguments {
    @Option(help: "Give up connecting to PostgreSQL after this many seconds, with one line saying why (env ARRAYFSM_CONNECT_TIMEOUT_SECONDS; default 10)")
    var connectTimeoutSeconds: Int?

    /// The timeout given, or its environment twin, or the default.
    func timeout() throws -> Duration { try Environment.connectTimeout(connectTimeoutSeconds) }
}
