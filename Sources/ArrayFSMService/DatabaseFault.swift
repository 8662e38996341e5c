// ArrayFSMService — the processor: command batches from Kafka, one transaction each, the outbox
// and its relay, readiness and metrics. Uses ArrayFSM for the domain and Kafka for the wire.
import PostgresNIO

/// Whose a database error is, which decides what the consumer does with the batch that met it.
///
/// - ``command``: the data is at fault (22 data exception, 23 integrity violation, 54 program
///   limit): the batch is applied one command per transaction and the failing command is
///   answered `rejected`.
/// - ``outage``: the database cannot serve now (the connection broke or never opened; 08 connection exception, 53 insufficient resources, 57P01–57P05 shutdown or
///   restart, 58 system error, 40 serialization failure or deadlock, 55P03 lock not available,
///   25006 read-only after a failover, 42501 a grant missing in the deployment): the batch is
///   retried with backoff for as long as it takes, and nothing is answered for good.
/// - ``unexpected``: anything else (57014 statement timeout, XX000 internal error, a trigger's
///   exception, a reply the client cannot decode, …): retried a few times, then applied one command per transaction, and a command
///   that still fails is answered `rejected` with `database_error`, so its partition moves on.
public enum DatabaseFault: Sendable, Hashable {
    case command
    case outage
    case unexpected

    /// The fault of `error`.
    public init(_ error: any Error) {
        guard let error = error as? PSQLError else {
            self = .outage
            return
        }
        guard let state = error.serverInfo?[.sqlState] else {
            // The client could not use what the server sent: no retry makes that go away.
            let clientFaults: [PSQLError.Code] = [.messageDecodingFailure, .invalidCommandTag, .tooManyParameters]
            self = clientFaults.contains(error.code) ? .unexpected : .outage
            return
        }
        let outageStates: Set<String> = ["57P01", "57P02", "57P03", "57P04", "57P05", "55P03", "25006", "42501"]
        switch state.prefix(2) {
        case "22", "23", "54": self = .command
        case "08", "53", "58", "40": self = .outage
        default: self = outageStates.contains(state) ? .outage : .unexpected
        }
    }

    /// "57014 canceling statement due to statement timeout": the SQLSTATE and the server's text.
    public static func describe(_ error: any Error) -> String {
        guard let error = error as? PSQLError, let info = error.serverInfo else { return "\(error)" }
        return "\(info[.sqlState] ?? "?") \(info[.message] ?? "")"
    }
}
