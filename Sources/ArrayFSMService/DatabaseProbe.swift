// ArrayFSMService: the database half of readiness, as a service of serve's group.
import ArrayFSM
import Logging
import PostgresNIO
import ServiceLifecycle

/// Probes the database every ``interval`` for readiness: unreachable from the first probe that
/// fails or goes unanswered for ``timeout``, until one is answered. ``Readiness/database`` logs
/// each outage once as it starts and once as it ends.
struct DatabaseProbe: Service {
    let database: ArrayDatabase
    let outages: OutageLog
    let interval: Duration
    let timeout: Duration
    let logger: Logger

    struct Unanswered: Error, CustomStringConvertible {
        var timeout: Duration
        var description: String { "no answer within \(OutageLog.seconds(timeout))" }
    }

    func run() async {
        await cancelWhenGracefulShutdown { [self] in await probeUntilCancelled() }
    }

    func probeUntilCancelled() async {
        while !Task.isCancelled {
            do {
                let answered = try await withinTimeLimit(timeout) { [database, logger] in
                    for try await _ in try await database.client.query("SELECT 1", logger: logger) {}
                    return true
                }
                if answered == nil { throw Unanswered(timeout: timeout) }
                outages.succeeded()
            } catch {
                if Task.isCancelled { return }
                outages.failed(error)
            }
            try? await Task.sleep(for: interval)
        }
    }
}
