// ArrayFSMService — the processor: command batches from Kafka, one transaction each, the outbox
// and its relay, readiness and metrics. Uses ArrayFSM for the domain and Kafka for the wire.
// The relay's rounds: read the oldest rows, produce them, keep up to four rounds in flight.
import ArrayFSM
import Kafka
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

extension OutboxRelay {
    /// Publishes until cancelled; then returns.
    ///
    /// - Throws: the producer's fatal error (e.g. `OUT_OF_ORDER_SEQUENCE_NUMBER` from a broker
    ///   that lost the idempotent producer's state). A producer in that state never delivers
    ///   again, so retrying would only let the outbox grow: the process must restart with a new
    ///   producer. Nothing is lost: undelivered rows stay in the outbox.
    func publishUntilCancelled() async throws {
        guard let stream = wakeUps.withLock({ stream in defer { stream = nil }; return stream }) else {
            preconditionFailure("OutboxRelay runs once")
        }
        var backoff = Duration.milliseconds(100)
        let failures = OutageLog(started: "outbox relay round failed, retrying", ended: "outbox relay publishing again", level: .warning, logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            // A ticker so rows written by other instances are published without a wake-up.
            group.addTask { [idleInterval, wakeUp] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: idleInterval)
                    wakeUp.yield()
                }
            }
            var signals = stream.makeAsyncIterator()
            while await signals.next() != nil {
                if Task.isCancelled { break }
                do {
                    let led = try await asLeader { connection in
                        try await publishPipelined(on: connection) { await signals.next() != nil }
                    }
                    // Another relay leads: its own failures and backoffs apply, not this one's.
                    if led == nil { retries.withLock { $0 = Retries() } }
                    backoff = .milliseconds(100)
                    progress.advanced()
                    failures.succeeded()
                } catch {
                    if let fatal = producer.currentFatalError {
                        logger.critical("the producer failed for good; the relay stops", metadata: ["error": "\(fatal)"])
                        throw fatal  // leaving the group cancels the ticker
                    }
                    failures.failed(error, metadata: ["in": "\(backoff)"])
                    try? await Task.sleep(for: backoff)
                    backoff = min(backoff * 2, .seconds(5))
                }
            }
            group.cancelAll()
        }
    }

    /// Delivery reports of rounds in flight, filled on the producer's delivery thread.
    final class Acknowledgements: Sendable {
        struct Failed {
            var row: Outbox.Row
            var error: KafkaError
            var sentAt: ContinuousClock.Instant
        }
        struct State {
            var delivered: [Int64] = []
            var failed: [Failed] = []
            var rounds = 0
        }
        let state = Mutex(State())

        func record(_ rows: [Outbox.Row], sentAt: ContinuousClock.Instant, _ report: KafkaDeliveryReport) {
            state.withLock { state in
                state.rounds += 1
                if report.isComplete {
                    state.delivered += rows.map(\.id)
                    return
                }
                var failed = Set<Int>()
                for failure in report.failed {
                    failed.insert(failure.index)
                    state.failed.append(Failed(row: rows[failure.index], error: failure.error, sentAt: sentAt))
                }
                for (index, row) in rows.enumerated() where !failed.contains(index) { state.delivered.append(row.id) }
            }
        }

        func take() -> State {
            state.withLock { state in defer { state = State() }; return state }
        }
    }

    /// Leads until the outbox is empty and every round is acknowledged: reads rows not already in
    /// flight, sends them without waiting, settles each round when its reports arrive.
    /// `nextSignal` waits for a commit notification or an acknowledgement; false means stop.
    func publishPipelined(on connection: PostgresConnection, nextSignal: () async -> Bool) async throws {
        let acknowledgements = Acknowledgements()
        var inFlight: Set<Int64> = []
        var rounds = 0
        var stopping = false
        defer {
            // Leaving with rounds in flight (an error, or cancellation): their rows stay in the
            // outbox and are published again by the next leader.
            if rounds > 0 { logger.debug("relay leaves rounds in flight", metadata: ["rounds": "\(rounds)"]) }
        }
        while true {
            if let fatal = producer.currentFatalError {
                try await recover(from: fatal, acknowledgements, on: connection)
            }
            let acknowledged = acknowledgements.take()
            rounds -= acknowledged.rounds
            inFlight.subtract(acknowledged.delivered)
            inFlight.subtract(acknowledged.failed.map(\.row.id))
            try await settle(acknowledged, on: connection)

            var rows: [Outbox.Row] = []
            if rounds < maxRoundsInFlight && !stopping {
                rows = try await readRound(excluding: inFlight, on: connection)
            }
            if !rows.isEmpty {
                inFlight.formUnion(rows.map(\.id))
                rounds += 1
                let sentAt = ContinuousClock.now
                try await producer.enqueue(rows.map(\.outgoing)) { [wakeUp, rows] report in
                    acknowledgements.record(rows, sentAt: sentAt, report)
                    wakeUp.yield()
                }
                if rows.count == batchSize { continue }
            }
            if rounds == 0 && rows.isEmpty { return }
            if stopping {
                // No more signals come: wait for the last acknowledgements by looking again shortly.
                try await Task.sleep(for: .milliseconds(5))
            } else if !(await nextSignal()) {
                stopping = true
            }
        }
    }

    /// The next round: the oldest rows not in flight, not backing off, not behind a failed row of
    /// their key. Forgets failed rows that are gone (deleted or parked by another instance, or an
    /// operator) when the read shows them no longer waiting.
    func readRound(excluding inFlight: Set<Int64>, on connection: PostgresConnection) async throws -> [Outbox.Row] {
        let now = ContinuousClock.now
        let (backingOff, holds) = retries.withLock { ($0.waiting(at: now), $0.holds) }
        let rows = try await watchdog.guarding("outbox read", logger: logger) {
            try await Outbox.oldest(batchSize, excluding: inFlight.union(backingOff), behind: holds, on: connection, logger: logger)
        }
        if !holds.isEmpty && rows.count < batchSize {
            // Every waiting row not excluded was returned: a due failed row not among them is gone.
            let returned = Set(rows.map(\.id))
            retries.withLock { retries in
                for (id, backoff) in retries.backoffs
                where backoff.retryAt <= now && !inFlight.contains(id) && !returned.contains(id) {
                    retries.backoffs[id] = nil
                }
            }
        }
        return rows
    }

    /// One round, no transaction held across it: read the oldest rows, produce them, await every
    /// delivery report, settle them (delete the delivered, count and back off the failed). A crash
    /// between produce and delete publishes them again (same event ids; consumers dedupe). Returns
    /// rows published: 0 when nothing could be read, or nothing read was delivered.
    func publishRound(on connection: PostgresConnection) async throws -> Int {
        let rows = try await readRound(excluding: [], on: connection)
        guard !rows.isEmpty else { return 0 }
        let sentAt = ContinuousClock.now
        let report = try await producer.send(rows.map(\.outgoing))
        let acknowledgements = Acknowledgements()
        acknowledgements.record(rows, sentAt: sentAt, report)
        let settled = acknowledgements.take()
        try await settle(settled, on: connection)
        if let fatal = producer.currentFatalError { throw fatal }
        return settled.delivered.count
    }
}

extension Outbox.Row {
    /// The row as a Kafka message (headers are stored flat: name, value, name, value, …).
    var outgoing: KafkaOutgoingMessage {
        KafkaOutgoingMessage(
            topic: message.topic, key: message.key, value: message.value,
            headers: stride(from: 0, to: message.headers.count - 1, by: 2).map {
                KafkaHeader(name: message.headers[$0], string: message.headers[$0 + 1])
            })
    }
}
