import ArgumentParser
import ArrayFSM
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
        do {
            return try DatabaseURL(text)
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// A stderr logger at `--log-level` / `ARRAYFSM_LOG_LEVEL` (default info).
    static func logger(_ label: String, level: String?) -> Logger {
        var logger = Logger(label: label) { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = value(level, "ARRAYFSM_LOG_LEVEL").flatMap(Logger.Level.init(rawValue:)) ?? .info
        return logger
    }
}
