// ArrayFSMService — the processor: command batches from Kafka, one transaction each, the outbox
// and its relay, readiness and metrics. Uses ArrayFSM for the domain and Kafka for the wire.
// What the relay does with rows that failed: count, back off, hold their key, park; and the
// producer's fatal errors.
import ArrayFSM
import Kafka
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

extension OutboxRelay {
    /// A row that failed and waits for its next attempt.
    struct Backoff {
        var topic: String
        var key: [UInt8]?
        var retryAt: ContinuousClock.Instant
        /// When its last failure was settled.
        var failedAt: ContinuousClock.Instant
    }

    /// The leader's per-row state: failed rows by id, and when it last saw a delivery.
    struct Retries {
        var backoffs: [Int64: Backoff] = [:]
        var lastDelivery: ContinuousClock.Instant?

        /// Rows not to read now: backing off until later.
        func waiting(at now: ContinuousClock.Instant) -> Set<Int64> {
            Set(backoffs.lazy.filter { $0.value.retryAt > now }.map(\.key))
        }

        /// Keys held back behind a failed row (null keys have no order to keep).
        var holds: [Outbox.Hold] {
            backoffs.compactMap { id, backoff in backoff.key.map { Outbox.Hold(id: id, topic: backoff.topic, key: $0) } }
        }
    }

    /// Settles acknowledged rounds: deletes the delivered rows, counts the failed ones on their
    /// rows (parking those that qualify) and backs them off.
    /// Failures that only follow from a fatal producer error are not the rows' fault: they are
    /// neither counted nor backed off (the caller deals with the producer).
    func settle(_ acknowledged: Acknowledgements.State, on connection: PostgresConnection) async throws {
        var acknowledged = acknowledged
        acknowledged.failed.removeAll { $0.error.isCollateralOfFatalError }
        try await watchdog.guarding("outbox delete", logger: logger) {
            try await Outbox.delete(acknowledged.delivered, on: connection, logger: logger)
        }
        published.add(acknowledged.delivered.count, ordering: .relaxed)
        progress.published(acknowledged.delivered.count)
        let now = ContinuousClock.now
        if !acknowledged.delivered.isEmpty {
            retries.withLock { retries in
                retries.lastDelivery = now
                guard !retries.backoffs.isEmpty else { return }
                for id in acknowledged.delivered { retries.backoffs[id] = nil }
            }
        }
        guard !acknowledged.failed.isEmpty else { return }
        deliveryFailures.add(acknowledged.failed.count, ordering: .relaxed)
        // Others delivered since this row's previous failure (or, the first time, since it was sent).
        let failures = retries.withLock { retries in
            acknowledged.failed.map { failed in
                let since = retries.backoffs[failed.row.id]?.failedAt ?? failed.sentAt
                return Outbox.Failure(id: failed.row.id, error: "\(failed.error.name): \(failed.error.message)",
                                      othersDelivered: retries.lastDelivery.map { $0 >= since } ?? false)
            }
        }
        let attempts = try await watchdog.guarding("outbox failures", logger: logger) {
            try await Outbox.recordFailures(failures, parkAfter: parkAfter, minimumAttempts: minimumAttempts,
                                            on: connection, logger: logger)
        }
        let rows = Dictionary(acknowledged.failed.map { ($0.row.id, $0) }, uniquingKeysWith: { first, _ in first })
        var parkedNow: [Int64] = []
        retries.withLock { retries in
            for failed in acknowledged.failed { retries.backoffs[failed.row.id] = nil }
            for attempt in attempts {
                guard let failed = rows[attempt.id] else { continue }
                if attempt.parked {
                    parkedNow.append(attempt.id)
                    continue
                }
                retries.backoffs[attempt.id] = Backoff(
                    topic: failed.row.message.topic, key: failed.row.message.key,
                    retryAt: now + Self.retryDelay(afterAttempts: attempt.attempts), failedAt: now)
            }
        }
        let first = acknowledged.failed[0]
        logger.warning("outbox rows not delivered; each is retried after a backoff of its own", metadata: [
            "rows": "\(acknowledged.failed.count)", "id": "\(first.row.id)", "topic": "\(first.row.message.topic)",
            "error": "\(first.error)",
        ])
        if !parkedNow.isEmpty {
            parked.add(parkedNow.count, ordering: .relaxed)
            logger.error("outbox rows parked: they kept failing while others were delivered; see arrayfsm outbox list", metadata: [
                "ids": "\(parkedNow.sorted())", "error": "\(rows[parkedNow[0]]!.error)",
            ])
        }
    }

    /// The relay's producer failed fatally. A gap-less guarantee failure (a batch refused for good,
    /// nothing after it delivered) is recovered from: the old producer is closed, which reports
    /// every message it still held, the refused rows are counted and backed off like any failure
    /// (their keys held back), and a new producer takes over; the rounds in flight are abandoned
    /// and their rows read again, in order. Any other fatal error is rethrown: the relay stops.
    /// - Throws: always — ``ProducerRenewed`` after a recovery, else `fatal`.
    func recover(from fatal: KafkaError, _ acknowledgements: Acknowledgements, on connection: PostgresConnection) async throws -> Never {
        guard fatal.code == KafkaError.gaplessGuaranteeCode, let renewProducer else { throw fatal }
        let old = producer
        await old.close(timeout: .seconds(2))
        try await settle(acknowledgements.take(), on: connection)
        let renewed = try renewProducer()
        currentProducer.withLock { $0 = renewed }
        logger.warning("a batch was refused for good; the relay replaced its producer to keep per-key order", metadata: [
            "error": "\(fatal)",
        ])
        throw ProducerRenewed(cause: fatal)
    }

    /// The relay replaced its producer; the leader starts over with the new one.
    struct ProducerRenewed: Error, CustomStringConvertible {
        var cause: KafkaError
        var description: String { "producer replaced after \(cause)" }
    }

    /// A failed row's wait before its next attempt: 100 ms, doubling, at most 5 s.
    static func retryDelay(afterAttempts attempts: Int) -> Duration {
        min(.milliseconds(100) * (1 << min(max(attempts - 1, 0), 6)), .seconds(5))
    }
}
