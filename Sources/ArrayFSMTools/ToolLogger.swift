// ArrayFSMTools: the logger the developer tools use when the caller gives none.
import Foundation
import Logging

/// A logger at `LOG_LEVEL` (default error): the tools' default, and the tests'.
public enum ToolLogger {
    /// A logger labelled `label`; `LOG_LEVEL=debug` shows SQL.
    public static func make(label: String) -> Logger {
        var logger = Logger(label: label)
        logger.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .error
        return logger
    }

    /// `arrayfsm.tools` at `LOG_LEVEL`.
    public static var `default`: Logger { make(label: "arrayfsm.tools") }
}
