// ArrayFSMChaos — the fault suite: serve processes under kills, restarts, broker and database
// faults and hostile input, checked by an oracle against a clean run. Built on ArrayFSMTools.
import ArrayFSM
import ArrayFSMService
import ArrayFSMTools
import Foundation
import Kafka
import Logging
import PostgresNIO

/// Checks a finished chaos run against the clean run: the database, the events, the offsets, the outbox.
struct Oracle {
    var expected: EventLedger
    var harness: ServiceHarness
    var client: PostgresClient
    var cleanURL: DatabaseURL
    /// The `hostile` scenario's inputs and what its members' `/metrics` said at the end.
    var hostile: Hostile?

    var topics: Topics { harness.topics }

    struct Hostile {
        var bursts: [HostileInput.Burst]
        /// Messages produced to the commands topic.
        var produced: Int
        var scrapes: [String]
    }

    func check(logger: Logger) async throws -> ChaosReport {
        var report = ChaosReport(scenario: .kills, commands: 0, faultsInjected: 0, commandsLost: 0, appliedTwice: 0,
                                 eventsMissing: 0, seconds: 0, violations: [])
        let reader = TopicReader(harness: harness)

        // The events, deduplicated by event_id (and dead letters by where they came from).
        var observed = EventLedger()
        let results = try await reader.all(topics.results)
        let transitions = try await reader.all(topics.transitions)
        let deadLetters = try await reader.all(topics.deadLetters)
        // Records come in offset order per partition, and a key lives in one partition.
        for record in results {
            guard let value = record.value else { continue }
            observed.addResult(value)
            observed.addInOrder(topic: topics.results, key: record.key, value)
        }
        for record in transitions {
            guard let value = record.value else { continue }
            observed.addTransition(value)
            observed.addInOrder(topic: topics.transitions, key: record.key, value)
        }
        for record in deadLetters {
            let source = ["arrayfsm-source-partition", "arrayfsm-source-offset"].map { name in
                record.headers.first { $0.name == name }.flatMap { $0.value.map { String(decoding: $0, as: UTF8.self) } } ?? "?"
            }
            observed.addDeadLetter(source: source.joined(separator: "/"))
        }
        for (command, answer) in expected.answers {
            guard let got = observed.answers[command] else {
                report.commandsLost += 1
                continue
            }
            if got != answer { report.violations.append("command \(command): answered \(got), the clean run \(answer)") }
            let distinct = observed.resultEvents[command]?.count ?? 0
            if distinct != 1 { report.violations.append("command \(command): \(distinct) distinct results") }
        }
        for command in Set(expected.refusals.keys).union(observed.refusals.keys) where expected.refusals[command] != observed.refusals[command] {
            report.violations.append("command \(command): refused as \(observed.refusals[command] ?? []), the clean run \(expected.refusals[command] ?? [])")
        }
        for command in Set(observed.answers.keys).subtracting(expected.answers.keys) {
            report.violations.append("command \(command): answered, but the clean run has no such command")
        }
        for (command, groups) in expected.transitions {
            let got = observed.transitions[command] ?? [:]
            for (group, count) in groups where got[group] != count {
                report.eventsMissing += 1
                report.violations.append("command \(command): \(group) moved \(got[group] ?? 0) ids in events, the clean run \(count)")
            }
        }
        if observed.deadLetters.count != expected.deadLetters.count {
            report.violations.append("\(observed.deadLetters.count) distinct dead letters, the clean run \(expected.deadLetters.count)")
        }
        if report.commandsLost > 0 { report.violations.append("\(report.commandsLost) commands have no result") }
        report.violations += expected.orderViolations(in: observed)

        // The database equals the clean run's (task instance ids differ: compare by natural keys).
        let chaosState = try await DatabaseState.read(client, logger: logger)
        let cleanState = try await cleanURL.withClient(maxConnections: 1, logger: logger) { try await DatabaseState.read($0, logger: logger) }
        let comparison = chaosState.compared(to: cleanState)
        report.appliedTwice = comparison.appliedTwice.count
        for (kind, rows) in [("applied twice", comparison.appliedTwice), ("not applied", comparison.notApplied), ("different", comparison.different)]
        where !rows.isEmpty {
            report.violations.append("database vs the clean run: \(rows.count) rows \(kind), e.g. \(rows.sorted().prefix(3).joined(separator: "; "))")
        }

        // Offsets committed to the end, outbox empty.
        let ends = try await reader.endOffsets(topics.commands)
        let committed = try await harness.committedOffsets(partitions: Int32(ends.count))
        for (partition, end) in ends where (committed[partition] ?? 0) != end && end > 0 {
            report.violations.append("partition \(partition): committed \(committed[partition] ?? -1), end \(end)")
        }
        // Outbox empty but for rows parked where the broker refuses them (the hostile scenario's).
        for try await (topic, count) in try await client.query(
            "SELECT topic, count(*) FROM arrayfsm_outbox GROUP BY topic ORDER BY topic", logger: logger).decode((String, Int64).self)
        {
            report.violations.append("\(count) events left in the outbox, for \(topic)")
        }
        var parked: [[UInt8]] = []
        var parkedElsewhere: [String: Int] = [:]
        for try await (topic, value) in try await client.query(
            "SELECT topic, value FROM arrayfsm_outbox_parked ORDER BY id", logger: logger).decode((String, ByteBuffer).self)
        {
            if hostile != nil && topic == HostileInput.undeliverableReplyTopic {
                parked.append(Array(value.readableBytesView))
            } else {
                parkedElsewhere[topic, default: 0] += 1
            }
        }
        for (topic, count) in parkedElsewhere.sorted(by: { $0.key < $1.key }) {
            report.violations.append("\(count) events parked, for \(topic)")
        }

        if let hostile {
            var sizes: [String: Int64] = [:]
            // (The refused topic answers every metadata request with its error: nothing can be in it.)
            for topic in try await reader.topicNames() where topic != HostileInput.undeliverableReplyTopic {
                sizes[topic] = try await reader.endOffsets(topic).values.reduce(0, +)
            }
            let check = HostileCheck(
                bursts: hostile.bursts, topics: topics, produced: hostile.produced, results: results, transitions: transitions,
                deadLetters: deadLetters, allowedReplies: try await reader.all(HostileInput.allowedReplyTopic), topicSizes: sizes,
                parked: parked, scrapes: hostile.scrapes
            ).check()
            report.violations += check.violations
            report.inputs = HostileInput.Kind.allCases.compactMap { kind in
                check.outcomes[kind].map { ChaosReport.InputOutcome(input: kind.rawValue, count: $0.count, outcomes: $0.outcomes) }
            }
        }
        return report
    }
}

/// The rows two runs of one workload must agree on, by natural key (task instance ids come from
/// a sequence and differ between runs).
struct DatabaseState {
    /// "task <id>" / "ti task=… batch=… step=…" / "array <id>" → the row's state.
    var rows: [String: String] = [:]
    /// The counters that grow once per application: a task's attempts, an array's batch counter.
    var counters: [String: Int] = [:]

    struct Comparison {
        var appliedTwice: [String] = []
        var notApplied: [String] = []
        var different: [String] = []
    }

    /// Rows here and not in `clean` (an extra task instance), or with a higher counter, count as
    /// applied twice; rows only in `clean` or with a lower counter as not applied.
    func compared(to clean: DatabaseState) -> Comparison {
        var result = Comparison()
        for key in Set(rows.keys).union(clean.rows.keys) {
            switch (rows[key], clean.rows[key]) {
            case (.some, nil): result.appliedTwice.append("\(key) exists only here")
            case (nil, .some): result.notApplied.append("\(key) missing")
            case let (here?, there?):
                let (mine, theirs) = (counters[key] ?? 0, clean.counters[key] ?? 0)
                if mine > theirs {
                    result.appliedTwice.append("\(key): counter \(mine), clean \(theirs)")
                } else if mine < theirs {
                    result.notApplied.append("\(key): counter \(mine), clean \(theirs)")
                } else if here != there {
                    result.different.append("\(key): \(here), clean \(there)")
                }
            case (nil, nil): break
            }
        }
        return result
    }

    static func read(_ client: PostgresClient, logger: Logger) async throws -> DatabaseState {
        var state = DatabaseState()
        for try await (id, status, attempts) in try await client.query(
            "SELECT id, status, num_attempts FROM task", logger: logger).decode((Int64, String, Int32).self)
        {
            state.rows["task \(id)"] = status
            state.counters["task \(id)"] = Int(attempts)
        }
        for try await (task, batch, step, status, distributor) in try await client.query(
            "SELECT task_id, array_batch_num, array_step_id, status, coalesce(distributor_id, '') FROM task_instance",
            logger: logger).decode((Int64, Int32, Int32, String, String).self)
        {
            state.rows["ti task=\(task) batch=\(batch) step=\(step)"] = "\(status) \(distributor)"
        }
        for try await (id, lastBatch) in try await client.query(#"SELECT id, last_batch_num FROM "array""#, logger: logger)
            .decode((Int64, Int32).self)
        {
            state.rows["array \(id)"] = ""
            state.counters["array \(id)"] = Int(lastBatch)
        }
        return state
    }
}
