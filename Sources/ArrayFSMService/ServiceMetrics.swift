import ArrayFSM
import Foundation
import Metrics

/// The service's metrics, through swift-metrics (exported in Prometheus format by ``HTTPEndpoint``).
///
/// Names, for dashboards and alerts:
/// - `arrayfsm_commands_total{type,status}`: status is ok, rejected, duplicate or dead_letter
/// - `arrayfsm_dead_letters_total`
/// - `arrayfsm_transitions_total{entity,from,to}`: rows moved
/// - `arrayfsm_batch_commands`: commands per transaction (histogram)
/// - `arrayfsm_db_transaction_seconds`: one batch's transaction, commit included (histogram)
/// - `arrayfsm_end_to_end_seconds`: produce timestamp → applied and committed (histogram)
/// - `arrayfsm_batch_failures_total`: batches not applied (database unreachable), retried
/// - `arrayfsm_consumer_lag`: messages behind on the commands topic, all assigned partitions
/// - `arrayfsm_outbox_depth`: events waiting to be published
/// - `arrayfsm_outbox_published_total`: events published
public struct ServiceMetrics: CommandObserver {
    /// Every metric name, so tests can check that dashboards use only what exists; each has its
    /// `# HELP` text in ``help`` (ServiceMetrics+Help.swift).
    public static let names = [
        "arrayfsm_commands_total", "arrayfsm_dead_letters_total", "arrayfsm_transitions_total", "arrayfsm_batch_commands",
        "arrayfsm_db_transaction_seconds", "arrayfsm_end_to_end_seconds", "arrayfsm_batch_failures_total",
        "arrayfsm_consumer_lag", "arrayfsm_outbox_depth", "arrayfsm_outbox_published_total",
        "arrayfsm_outbox_parked_rows", "arrayfsm_outbox_parked_total", "arrayfsm_outbox_delivery_failures_total",
        "arrayfsm_consumer_paused", "arrayfsm_processed_commands_rows", "arrayfsm_processed_commands_deleted_total",
    ]

    let batchCommands = Recorder(label: "arrayfsm_batch_commands", aggregate: true)
    let transaction = Metrics.Timer(label: "arrayfsm_db_transaction_seconds")
    let endToEnd = Metrics.Timer(label: "arrayfsm_end_to_end_seconds")
    let failures = Counter(label: "arrayfsm_batch_failures_total")
    let deadLetters = Counter(label: "arrayfsm_dead_letters_total")
    let lag = Gauge(label: "arrayfsm_consumer_lag")
    let outboxDepth = Gauge(label: "arrayfsm_outbox_depth")
    let published = Counter(label: "arrayfsm_outbox_published_total")

    public init() {}

    public func batchApplied(_ outcome: CommandBatchProcessor.Outcome, messages: [IncomingCommand], duration: Duration) {
        batchCommands.record(messages.count)
        transaction.recordNanoseconds(Int64(duration.components.seconds) * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
        var byKind: [String: Int] = [:]
        for command in outcome.commands { byKind["\(command.type)\u{0}\(command.status)", default: 0] += 1 }
        for (kind, count) in byKind {
            let parts = kind.split(separator: "\u{0}", omittingEmptySubsequences: false).map(String.init)
            Counter(label: "arrayfsm_commands_total", dimensions: [("type", parts[0]), ("status", parts[1])]).increment(by: count)
            if parts[1] == "dead_letter" { deadLetters.increment(by: count) }
        }
        for (pair, count) in outcome.transitions {
            // "entity:from->to"
            let entity = pair.prefix { $0 != ":" }
            let rest = pair.dropFirst(entity.count + 1)
            let from = rest.prefix { $0 != "-" }
            let to = rest.dropFirst(from.count + 2)
            Counter(label: "arrayfsm_transitions_total", dimensions: [("entity", String(entity)), ("from", String(from)), ("to", String(to))])
                .increment(by: count)
        }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        for message in messages {
            if let produced = message.timestampMilliseconds, produced > 0, now >= produced {
                endToEnd.recordMilliseconds(now - produced)
            }
        }
    }

    public func batchFailed(_ error: any Error) {
        failures.increment()
    }

    /// Records the sampled gauges.
    public func sample(consumerLag: Int64?, outboxDepth depth: Int?, publishedSinceLast: Int) {
        if let consumerLag { lag.record(consumerLag) }
        if let depth { outboxDepth.record(depth) }
        if publishedSinceLast > 0 { published.increment(by: publishedSinceLast) }
    }
}
