// ArrayFSMChaos — the fault suite: serve processes under kills, restarts, broker and database
// faults and hostile input, checked by an oracle against a clean run. Built on ArrayFSMTools.
import ArrayFSM
import ArrayFSMClient
import ArrayFSMLoad
import ArrayFSMService
import ArrayFSMTools
import Foundation
import Kafka
import Logging
import PostgresNIO
import Synchronization

/// One scenario of the fault-injection suite: a generated workload replayed through `serve`
/// child processes while faults are injected, then checked by an oracle against a clean run of
/// the same messages applied one batch after another on a database of its own.
///
/// Everything is on 127.0.0.1: a throwaway PostgreSQL for this run (so it can be restarted), the
/// in-process mock Kafka cluster (a noida-db process for `broker-restart`), and `serve`
/// connecting as the least-privilege role ``ServiceRole``.
public struct ChaosRun: Sendable {
    public var scenario: ChaosScenario
    public var size: ChaosSize
    /// The `arrayfsm` executable that runs `serve`.
    public var binary: String
    public var seed: UInt64
    /// Breaks the run on purpose, to show the oracle is not vacuous (tests only).
    public var sabotage: Sabotage?

    /// Ways to break a run that the oracle must notice.
    public struct Sabotage: Sendable {
        /// Good messages left out of the replay (their commands are never applied).
        public var dropMessages: Int
        /// Tasks whose attempt counter is bumped directly (as if a command were applied twice).
        public var bumpAttempts: Int

        public init(dropMessages: Int = 0, bumpAttempts: Int = 0) {
            self.dropMessages = dropMessages
            self.bumpAttempts = bumpAttempts
        }
    }

    public init(scenario: ChaosScenario, size: ChaosSize = .small, binary: String, seed: UInt64 = 42) {
        self.scenario = scenario
        self.size = size
        self.binary = binary
        self.seed = seed
    }

    public func run(logger: Logger, progress: @escaping @Sendable (String) -> Void = { _ in }) async throws -> ChaosReport {
        let started = ContinuousClock.now
        let postgres = try ThrowawayPostgres(settings: ThrowawayPostgres.fastSettings + ["deadlock_timeout=100ms"])
        defer { postgres.stop() }
        let broker = scenario == .brokerRestart ? try NoidaBroker() : nil
        defer { broker?.stop() }
        try await postgres.url.withClient(maxConnections: 1, logger: logger) { admin in
            for name in ["chaos_clean", "chaos_run"] {
                try await admin.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: logger)
            }
        }
        var spec = LoadSpec()
        spec.seed = seed
        spec.workflows = self.size.workflows
        spec.arraysPerWorkflow = self.size.arraysPerWorkflow
        spec.maxTasks = self.size.maxTasks
        spec.batchSize = 100
        spec.killFraction = 0.1
        let harnessTopics = Topics()
        var records: [TopicDumpRecord] = []
        _ = WorkloadGenerator(spec: spec, topic: harnessTopics.commands).generate { records.append($0) }
        // Which records are the generated workload's (sent through the client), by position.
        var fromWorkload = Array(repeating: true, count: records.count)
        var bursts: [HostileInput.Burst] = []
        let goodCount = records.count
        if scenario == .hostile {
            var random = SplitMix64(seed: seed)
            bursts = HostileInput.bursts(rounds: max(1, self.size.faults / HostileInput.Kind.allCases.count), good: records,
                                         arrays: spec.plan(), topics: harnessTopics, random: &random)
            records += bursts.flatMap(\.records)  // the clean run applies them after the workload: each one's outcome is the same anywhere
        }
        // The hostile scenario's faults are its bursts: the replay's window spans them.
        let size = ChaosSize(workflows: self.size.workflows, arraysPerWorkflow: self.size.arraysPerWorkflow, maxTasks: self.size.maxTasks,
                             faults: scenario == .hostile ? bursts.count : self.size.faults, faultInterval: self.size.faultInterval)
        if scenario == .badInput {
            var random = SplitMix64(seed: seed)
            let duplicated = (0..<5).map { _ in records[Int.random(in: 0..<records.count, using: &random)] }
            let bad = BadInput.messages(arrays: spec.plan(), duplicateOf: duplicated, topic: harnessTopics.commands)
            let (single, duplicates) = (bad.prefix(bad.count - duplicated.count), bad.suffix(duplicated.count))
            for record in single {
                let position = Int.random(in: 0...records.count, using: &random)
                records.insert(record, at: position)
                fromWorkload.insert(false, at: position)
            }
            records += duplicates  // after their originals, in the same partitions
            fromWorkload += Array(repeating: false, count: duplicates.count)
        }

        progress("\(scenario.rawValue): clean run of \(records.count) messages")
        let cleanURL = postgres.url.withDatabase("chaos_clean")
        let expected = try await cleanURL.withClient(maxConnections: 2, logger: logger) { client in
            try await CleanRun(records: records, spec: spec, topics: harnessTopics).ledger(client, logger: logger)
        }

        let chaosURL = postgres.url.withDatabase("chaos_run")
        return try await chaosURL.withClient(maxConnections: 4, logger: logger) { client in
            let database = ArrayDatabase(client: client)
            try await Migrator().migrate(client, logger: logger)
            try await Seeder(spec: spec).seed(client, logger: logger)
            try await ServiceRole.create(on: client, lockTimeout: scenario == .locks ? "300ms" : nil, logger: logger)
            var serveURL = chaosURL
            serveURL.username = ServiceRole.name

            let harness = try await Self.harness(database: database, broker: broker, logger: logger)
            var environment: [String: String] = [:]
            if scenario == .hostile {
                // As an ACL would: the broker refuses the topic, so the replies to it are parked.
                try harness.cluster?.setTopicError(HostileInput.undeliverableReplyTopic, code: HostileInput.undeliverableError)
                // The unknown topic's replies get no answer; reported failed after 3 s (not librdkafka's
                // 300 s), they fail three times while the workload's events are still delivered.
                environment["ARRAYFSM_OUTBOX_PARK_AFTER_SECONDS"] = "2"
                environment["ARRAYFSM_KAFKA_MESSAGE_TIMEOUT_MS"] = "3000"
            }
            let fleet = ServeFleet(harness: harness, binary: binary, databaseURL: serveURL, environment: environment)
            try fleet.add()
            let monitor = ProgressMonitor(client: client, logger: logger)
            let monitorTask = Task { await monitor.run() }
            let supervisor = Task {
                while !Task.isCancelled {
                    try? fleet.supervise()
                    try? await Task.sleep(for: .milliseconds(200))
                }
            }

            progress("\(scenario.rawValue): replaying while injecting \(scenario == .badInput ? 1 : size.faults) faults")
            let workload = Array(records.prefix(scenario == .hostile ? goodCount : records.count).dropLast(sabotage?.dropMessages ?? 0))
            let injector = FaultInjector(scenario: scenario, size: size, fleet: fleet, postgres: postgres, broker: broker,
                                         client: client, arrays: spec.plan(), bursts: bursts, logger: logger)
            let faults: [ProgressMonitor.Fault]
            let answered: Bool
            let workloadMarks = Array(fromWorkload.prefix(workload.count))
            let workloadClient = try await ArrayFSMClient(configuration: Self.workloadClientConfiguration(harness), logger: logger)
            let clientTask = Task { try await workloadClient.run() }
            var sent: [PendingAnswer] = []
            var tails: [String] = []
            do {
                enum Child: Sendable {
                    case faults([ProgressMonitor.Fault])
                    case sent([PendingAnswer])
                }
                (faults, sent) = try await withThrowingTaskGroup(of: Child.self) { group in
                    group.addTask { .sent(try await replay(workload, fromWorkload: workloadMarks, client: workloadClient, harness: harness, size: size)) }
                    group.addTask { .faults(try await injector.inject()) }
                    var all: ([ProgressMonitor.Fault], [PendingAnswer]) = ([], [])
                    for try await child in group {
                        switch child {
                        case .faults(let faults): all.0 += faults
                        case .sent(let pending): all.1 = pending
                        }
                    }
                    return all
                }

                progress("\(scenario.rawValue): waiting for every command to be answered")
                answered = try await waitForCompletion(expected, client: client, harness: harness, fleet: fleet,
                                                       timeout: .seconds(sabotage == nil ? 240 : 20))
                if !answered {
                    let counts = await Completion(client: client, harness: harness)
                    tails = ["progress: \(counts) (expected \(expected.answers.count) answers, \(expected.deadLetters.count) dead letters)"]
                        + fleet.outputTails()
                    // What the service's connections were doing when it stopped making progress.
                    let rows = try? await client.query(
                        """
                        SELECT pid, state, coalesce(wait_event_type || ':' || wait_event, ''), extract(epoch FROM now() - state_change)::float8, left(query, 80)
                        FROM pg_stat_activity WHERE usename = \(ServiceRole.name)
                        """, logger: logger)
                    if let rows {
                        for try await (pid, state, wait, age, query) in rows.decode((Int32, String?, String, Double?, String?).self) {
                            tails.append("backend \(pid): \(state ?? "?") \(wait) for \(Int(age ?? 0)) s: \(query ?? "")")
                        }
                    }
                }
            } catch {
                clientTask.cancel()
                // The driver gives up: its serve children must not outlive it.
                supervisor.cancel()
                await supervisor.value
                await fleet.killAll()
                monitorTask.cancel()
                try? await harness.shutdown()
                throw error
            }
            supervisor.cancel()
            await supervisor.value
            let scrapes = scenario == .hostile ? await fleet.scrapeMetrics() : []
            await fleet.stopAll()
            monitorTask.cancel()
            let samples = await monitorTask.value

            if let bump = sabotage?.bumpAttempts, bump > 0 {
                try await client.query(
                    "UPDATE task SET num_attempts = num_attempts + 1 WHERE id IN (SELECT id FROM task ORDER BY id LIMIT \(bump))",
                    logger: logger)
            }
            progress("\(scenario.rawValue): checking")
            var oracle = Oracle(expected: expected, harness: harness, client: client, cleanURL: cleanURL)
            if scenario == .hostile { oracle.hostile = .init(bursts: bursts, produced: workload.count + bursts.reduce(0) { $0 + $1.records.count }, scrapes: scrapes) }
            var report = try await oracle.check(logger: logger)
            if !answered {
                report.violations.insert("not every command was answered within the time limit; serve's last lines:\n"
                                         + tails.joined(separator: "\n"), at: 0)
            }
            let unanswered = await Self.unanswered(sent, within: .seconds(answered ? 30 : 1))
            clientTask.cancel()
            try? await clientTask.value
            if unanswered > 0 {
                report.violations.append("\(unanswered) of the \(sent.count) commands the client sent got no answer on its reply topic")
            }
            report.scenario = scenario
            report.commands = records.count
            report.faultsInjected = faults.count
            report.serveExits = fleet.unexpectedExits
            // A member that ignores SIGTERM would be SIGKILLed by its supervisor: nothing lost, but
            // every stop would wait out the supervisor's timeout.
            report.violations += fleet.stuckOnStop
            let recoveries = faults.compactMap { ProgressMonitor.recovery(after: $0, samples: samples) }.sorted()
            for index in report.inputs.indices {
                let mine = zip(bursts, faults).filter { $0.0.kind.rawValue == report.inputs[index].input }
                report.inputs[index].recoverySeconds = mine.compactMap { ProgressMonitor.recovery(after: $0.1, samples: samples) }.max()
            }
            report.recoveryP50 = recoveries.isEmpty ? nil : recoveries[recoveries.count / 2]
            report.recoveryMax = recoveries.last
            report.seconds = (ContinuousClock.now - started).seconds
            try await harness.shutdown()
            return report
        }
    }

    /// The scenario's broker: librdkafka's mock cluster in this process, or the noida-db process
    /// of `broker-restart`, whose topics are created here (it auto-creates topics with one partition).
    static func harness(database: ArrayDatabase, broker: NoidaBroker?, logger: Logger) async throws -> ServiceHarness {
        // The contract's topic names, as the clean run uses: a reply_to naming serve's commands
        // topic must name the one serve reads.
        let topics = Topics()
        guard let broker else {
            let cluster = try MockKafkaCluster(brokers: 1, topics: Dictionary(uniqueKeysWithValues: topics.all.map { ($0, commandPartitions) }))
            return try ServiceHarness(database: database, bootstrapServers: cluster.bootstrapServers, topics: topics,
                                      groupID: "arrayfsm-chaos", cluster: cluster, logger: logger)
        }
        let admin = try KafkaAdmin(configuration: KafkaConfiguration(bootstrapServers: broker.bootstrapServers), logger: logger)
        for topic in topics.all { try await admin.createTopicIfMissing(topic, partitions: commandPartitions) }
        return try ServiceHarness(database: database, bootstrapServers: broker.bootstrapServers, topics: topics,
                                  groupID: "arrayfsm-chaos", logger: logger)
    }

    /// Sends the messages in order (per-key order is kept), spread over the fault window so
    /// faults land while commands are in flight. The workload's commands go through `client`, as
    /// a scheduler sends them (with a reply topic of their own); the rest — malformed, illegal,
    /// reused ids — as raw messages. Returns the client's calls.
    func replay(_ records: [TopicDumpRecord], fromWorkload: [Bool], client: ArrayFSMClient, harness: ServiceHarness,
                size: ChaosSize) async throws -> [PendingAnswer] {
        let raw = try KafkaProducer(configuration: KafkaConfiguration(
            bootstrapServers: harness.bootstrapServers, clientID: "chaos-replay", properties: client.configuration.kafkaProperties))
        let window = Double(size.faults) * size.faultInterval + 2
        let ticks = max(1, Int(window * 10))
        let perTick = max(1, (records.count + ticks - 1) / ticks)
        var unkeyed = 0
        var pending: [PendingAnswer] = []
        for start in stride(from: 0, to: records.count, by: perTick) {
            // Consecutive runs of one kind, each sent and acknowledged before the next.
            var index = start
            let end = min(start + perTick, records.count)
            while index < end {
                let viaClient = fromWorkload[index]
                var stop = index
                while stop < end && fromWorkload[stop] == viaClient { stop += 1 }
                let messages = Self.messages(records[index..<stop], topic: harness.topics.commands, unkeyed: &unkeyed)
                if viaClient {
                    let commands = try messages.map { message in
                        guard let command = ArrayCommand(envelope: message.value ?? [], key: message.key, partition: message.partition) else {
                            throw Stuck(description: "a workload record is not a command envelope")
                        }
                        return command
                    }
                    // Acknowledged before the next run goes out: per-key order holds across a producer renewal.
                    pending += try await client.submit(commands, acknowledged: true)
                } else {
                    let report = try await raw.send(messages)
                    if let failure = report.failures.first { throw failure }
                }
                index = stop
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        await raw.close()
        return pending
    }

    /// The workload's client: its own reply topic (``HostileCheck`` allows serve to write
    /// there), producers that may send a 10 MB message (the broker and serve must cope), and no
    /// attempt sent again: the oracle counts the messages produced, and a fault only delays
    /// answers (serve answers every command it reads).
    static func workloadClientConfiguration(_ harness: ServiceHarness) -> ArrayFSMClient.Configuration {
        var configuration = harness.clientConfiguration(clientID: workloadClientID)
        configuration.kafkaProperties = ["linger.ms": "5", "message.max.bytes": "16000000"]
        configuration.attemptTimeout = .seconds(3600)
        configuration.deadline = .seconds(3600)
        return configuration
    }

    static let workloadClientID = "chaos-workload"

    /// How many of `calls` have no answer after waiting up to `time` for the rest.
    static func unanswered(_ calls: [PendingAnswer], within time: Duration) async -> Int {
        let giveUp = ContinuousClock.now + time
        while calls.contains(where: { $0.outcome == nil }) && ContinuousClock.now < giveUp {
            try? await Task.sleep(for: .milliseconds(100))
        }
        return calls.filter { (try? $0.outcome?.get()) == nil }.count
    }

    /// Partitions of the commands topic: messages go to the first `commandPartitions - 1` by key;
    /// the last one takes only messages over 1 MiB. librdkafka's mock cluster keeps just the newest
    /// ~5 MB of a partition, so a 10 MB message would push the unread commands before it out of
    /// their partition (a broker's retention, which no consumer can undo).
    static let commandPartitions: Int32 = 5

    /// The records as messages to the commands topic, each in its partition (``partition(of:unkeyed:)``).
    static func messages(_ records: some Sequence<TopicDumpRecord>, topic: String, unkeyed: inout Int) -> [KafkaOutgoingMessage] {
        var messages: [KafkaOutgoingMessage] = []
        for record in records {
            messages.append(KafkaOutgoingMessage(topic: topic, partition: partition(of: record, unkeyed: &unkeyed), key: record.key,
                                                 value: record.payload))
        }
        return messages
    }

    /// A scenario that cannot go on (what it waits for did not happen).
    struct Stuck: Error, CustomStringConvertible {
        var description: String
    }

    static func partition(of record: TopicDumpRecord, unkeyed: inout Int) -> Int32 {
        if (record.payload?.count ?? 0) > 1 << 20 { return commandPartitions - 1 }
        guard let key = record.key else {
            unkeyed += 1
            return Int32(unkeyed % Int(commandPartitions - 1))
        }
        // FNV-1a: the same key always lands in the same partition, which keeps per-array order.
        var hash: UInt32 = 2_166_136_261
        for byte in key { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return Int32(hash % UInt32(commandPartitions - 1))
    }

    /// Waits until the service answered as many commands as the clean run and dead-lettered as many
    /// messages; restarts a member if none is left running (a fault may end with none).
    func waitForCompletion(_ expected: EventLedger, client: PostgresClient, harness: ServiceHarness, fleet: ServeFleet,
                           timeout: Duration) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let counts = await Completion(client: client, harness: harness)
            if counts.processed >= expected.answers.count && counts.deadLetters >= expected.deadLetters.count && counts.outbox == 0 {
                return true
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        return false
    }

    /// How far the service got: commands applied, messages dead-lettered, events waiting to be
    /// published (parked ones are not waiting; -1: could not be read). When it stops short, the first two say whether the consumers or
    /// the relay stalled.
    struct Completion: CustomStringConvertible {
        var processed: Int64
        var deadLetters: Int64
        var outbox: Int64

        init(client: PostgresClient, harness: ServiceHarness) async {
            processed = (try? await client.query("SELECT count(*) FROM arrayfsm_processed_command").decode(Int64.self)
                .reduce(0) { $0 + $1 }) ?? -1
            deadLetters = (try? await TopicReader(harness: harness).endOffsets(harness.topics.deadLetters).values.reduce(0, +)) ?? -1
            outbox = (try? await client.query("SELECT count(*) FROM arrayfsm_outbox").decode(Int64.self)
                .reduce(0) { $0 + $1 }) ?? -1
        }

        var description: String { "\(processed) commands applied, \(deadLetters) dead-lettered, \(outbox) events waiting in the outbox" }
    }
}
