// ArrayFSMService — the processor: command batches from Kafka, one transaction each, the outbox
// and its relay, readiness and metrics. Uses ArrayFSM for the domain and Kafka for the wire.
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// One log line when a dependency starts failing and one when it works again, however many
/// attempts fail in between (those are logged at debug): a database down for ten minutes is two
/// lines, not thousands.
public final class OutageLog: Sendable {
    /// What the first failure logs, before the error (e.g. "database unreachable").
    let started: String
    /// What the first success after failures logs, before the outage's length (e.g. "database reachable again").
    let ended: String
    let level: Logger.Level
    let logger: Logger
    private let outage = Mutex<(since: ContinuousClock.Instant, attempts: Int)?>(nil)

    /// - Parameters:
    ///   - started: logged as "`started`: error" at the first failure.
    ///   - ended: logged as "`ended` after 12.3 s" at the first success after failures.
    ///   - level: the level of the line that starts an outage (the end is logged at notice).
    public init(started: String, ended: String, level: Logger.Level = .error, logger: Logger) {
        self.started = started
        self.ended = ended
        self.level = level
        self.logger = logger
    }

    /// An attempt failed: starts the outage (logged) or counts one more attempt in it (debug).
    public func failed(_ error: any Error, metadata: Logger.Metadata = [:]) {
        let first = outage.withLock { outage in
            defer { outage = (outage?.since ?? .now, (outage?.attempts ?? 0) + 1) }
            return outage == nil
        }
        logger.log(level: first ? level : .debug, "\(started): \(Self.describe(error))", metadata: metadata)
    }

    /// An attempt succeeded: ends the outage, if one is under way, with a line saying how long it lasted.
    public func succeeded() {
        guard let ended = outage.withLock({ outage in defer { outage = nil }; return outage }) else { return }
        logger.notice("\(self.ended) after \(Self.seconds(ContinuousClock.now - ended.since))", metadata: [
            "failed_attempts": "\(ended.attempts)",
        ])
    }

    /// When the outage under way started; nil while the dependency works.
    public var since: ContinuousClock.Instant? {
        outage.withLock { $0?.since }
    }

    /// "12.3 s".
    static func seconds(_ duration: Duration) -> String {
        String(format: "%.1f s", Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
    }

    /// The error with its cause. postgres-nio's errors describe themselves generically on purpose
    /// (their reflection carries the query); the code, the server's message and the underlying
    /// error say what went wrong without it.
    static func describe(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return "\(error)" }
        var parts = ["\(error.code)"]
        if let state = error.serverInfo?[.sqlState] { parts.append(state) }
        if let message = error.serverInfo?[.message] { parts.append(message) }
        if let underlying = error.underlying { parts.append("\(underlying)") }
        return parts.joined(separator: ": ")
    }
}
