// ArrayFSMChaos — the fault suite: serve processes under kills, restarts, broker and database
// faults and hostile input, checked by an oracle against a clean run. Built on ArrayFSMTools.
import Foundation
import Logging
import PostgresNIO

/// Samples how many commands the service has applied, ten times a second, to tell how long
/// after each fault work resumed.
struct ProgressMonitor: Sendable {
    let client: PostgresClient
    let logger: Logger

    /// A fault: when it started and when the injector finished it (e.g. after the restart).
    struct Fault: Sendable {
        var started: ContinuousClock.Instant
        var ended: ContinuousClock.Instant
    }

    struct Sample: Sendable {
        var at: ContinuousClock.Instant
        var applied: Int64
    }

    /// Samples until cancelled; failed samples (the database restarting) are skipped.
    func run() async -> [Sample] {
        var samples: [Sample] = []
        while !Task.isCancelled {
            if let rows = try? await client.query("SELECT count(*) FROM arrayfsm_processed_command", logger: logger),
               let count = try? await rows.decode(Int64.self).reduce(0, +) {
                samples.append(Sample(at: .now, applied: count))
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return samples
    }

    /// Seconds from the fault's start until the applied count next grew after the fault ended;
    /// nil if nothing was left to apply (the count never grew again).
    static func recovery(after fault: Fault, samples: [Sample]) -> Double? {
        guard let before = samples.last(where: { $0.at <= fault.started })?.applied else { return nil }
        let baseline = max(before, samples.last(where: { $0.at <= fault.ended })?.applied ?? before)
        guard let resumed = samples.first(where: { $0.at > fault.ended && $0.applied > baseline }) else { return nil }
        return (resumed.at - fault.started).seconds
    }
}
