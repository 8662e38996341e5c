// ArrayFSMService — the processor: command batches from Kafka, one transaction each, the outbox
// and its relay, readiness and metrics. Uses ArrayFSM for the domain and Kafka for the wire.
import ArrayFSM
import Foundation
import Metrics
import Synchronization

/// The service's metrics, through swift-metrics (exported in Prometheus format by ``HTTPEndpoint``).
///
/// Names, for dashboards and alerts:
/// - `arrayfsm_commands_total{type,status}`: type is a known command type or `unknown`; status is ok,
///   rejected, duplicate or dead_letter
/// - `arrayfsm_dead_letters_total`
/// - `arrayfsm_transitions_total{entity,from,to}`: rows moved
/// - `arrayfsm_batch_commands`: commands per transaction (histogram)
/// - `arrayfsm_db_transaction_seconds`: one batch's transaction, commit included (histogram)
/// - `arrayfsm_end_to_end_seconds`: produce timestamp → applied and committed (histogram)
/// - `arrayfsm_batch_failures_total`: batches not applied (database unreachable), retried
/// - `arrayfsm_consumer_lag`: messages behind on the commands topic, all assigned partitions
/// - `arrayfsm_outbox_depth`: events waiting to be published (parked rows not included)
/// - `arrayfsm_outbox_published_total`: events published
/// - `arrayfsm_processed_commands_rows`, `arrayfsm_processed_commands_deleted_total`: the
///   processed-commands table and its retention (``ProcessedCommandRetention``)
/// - `arrayfsm_outbox_parked_rows`: outbox rows parked now (undeliverable; `arrayfsm outbox list`), sampled with the depth
/// - `arrayfsm_outbox_parked_total`: rows this instance parked
/// - `arrayfsm_outbox_delivery_failures_total`: failed delivery attempts (each is retried or, in the end, parks its row)
/// - `arrayfsm_consumer_paused`: 1 while the consumer has stopped fetching because the outbox holds
///   more than `--max-outbox-rows` waiting rows, else 0
public struct ServiceMetrics: CommandObserver {
    /// Every metric name, so tests can check that dashboards use only what exists; each has its
    /// `# HELP` text in ``help`` (ServiceMetrics+Help.swift).
    public static let names = [
        "arrayfsm_commands_total", "arrayfsm_dead_letters_total", "arrayfsm_transitions_total", "arrayfsm_batch_commands",
        "arrayfsm_db_transaction_seconds", "arrayfsm_end_to_end_seconds", "arrayfsm_batch_failures_total",
        "arrayfsm_consumer_lag", "arrayfsm_outbox_depth", "arrayfsm_outbox_published_total",
        "arrayfsm_processed_commands_rows", "arrayfsm_processed_commands_deleted_total",
        "arrayfsm_outbox_parked_rows", "arrayfsm_outbox_parked_total", "arrayfsm_outbox_delivery_failures_total",
        "arrayfsm_consumer_paused",
    ]

    let batchCommands = Recorder(label: "arrayfsm_batch_commands", aggregate: true)
    let transaction = Metrics.Timer(label: "arrayfsm_db_transaction_seconds")
    let endToEnd = Metrics.Timer(label: "arrayfsm_end_to_end_seconds")
    let failures = Counter(label: "arrayfsm_batch_failures_total")
    let deadLetters = Counter(label: "arrayfsm_dead_letters_total")
    let lag = Gauge(label: "arrayfsm_consumer_lag")
    let outboxDepth = Gauge(label: "arrayfsm_outbox_depth")
    let published = Counter(label: "arrayfsm_outbox_published_total")
    let parkedRows = Gauge(label: "arrayfsm_outbox_parked_rows")
    let parkedTotal = Counter(label: "arrayfsm_outbox_parked_total")
    let deliveryFailures = Counter(label: "arrayfsm_outbox_delivery_failures_total")
    let paused = Gauge(label: "arrayfsm_consumer_paused")
    /// Counters by label values, made once each: their keys are typed and bounded (the nine
    /// command types and `unknown` times four statuses; the FSM's transitions).
    let counters = LabelledCounters()

    public init() {
        paused.record(0)
    }

    public func batchApplied(_ outcome: CommandBatchProcessor.Outcome, messages: [IncomingCommand], duration: Duration) {
        batchCommands.record(messages.count)
        transaction.recordNanoseconds(Int64(duration.components.seconds) * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
        var byKind: [CommandBatchProcessor.CommandCount: Int] = [:]
        for command in outcome.commands { byKind[command, default: 0] += 1 }
        for (kind, count) in byKind {
            counters.commands(kind).increment(by: count)
            if kind.status == .deadLetter { deadLetters.increment(by: count) }
        }
        for (kind, count) in outcome.transitions { counters.transitions(kind).increment(by: count) }
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

    public func consumerPaused(_ isPaused: Bool) {
        paused.record(isPaused ? 1 : 0)
    }

    /// Records the sampled gauges and the relay's counts since the last sample.
    public func sample(consumerLag: Int64?, outboxDepth depth: Int?, parkedRows parked: Int? = nil, publishedSinceLast: Int,
                       failuresSinceLast: Int = 0, parkedSinceLast: Int = 0) {
        if let consumerLag { lag.record(consumerLag) }
        if let depth { outboxDepth.record(depth) }
        if let parked { parkedRows.record(parked) }
        if publishedSinceLast > 0 { published.increment(by: publishedSinceLast) }
        if failuresSinceLast > 0 { deliveryFailures.increment(by: failuresSinceLast) }
        if parkedSinceLast > 0 { parkedTotal.increment(by: parkedSinceLast) }
    }
}

/// The labelled counters of ``ServiceMetrics``, each made on first use and kept.
final class LabelledCounters: Sendable {
    private let commandCounters = Mutex<[CommandBatchProcessor.CommandCount: Counter]>([:])
    private let transitionCounters = Mutex<[CommandBatchProcessor.TransitionKind: Counter]>([:])

    func commands(_ kind: CommandBatchProcessor.CommandCount) -> Counter {
        commandCounters.withLock { counters in
            if let counter = counters[kind] { return counter }
            let counter = Counter(label: "arrayfsm_commands_total", dimensions: [("type", kind.typeLabel), ("status", kind.status.rawValue)])
            counters[kind] = counter
            return counter
        }
    }

    func transitions(_ kind: CommandBatchProcessor.TransitionKind) -> Counter {
        transitionCounters.withLock { counters in
            if let counter = counters[kind] { return counter }
            let counter = Counter(label: "arrayfsm_transitions_total",
                                  dimensions: [("entity", kind.entity.rawValue), ("from", kind.from ?? "new"), ("to", kind.to)])
            counters[kind] = counter
            return counter
        }
    }
}
