import ArrayFSM
import ArrayFSMService
import Foundation
import Kafka
import Logging
import PostgresNIO
import Synchronization

/// The service benchmark: commands through Kafka and `serve` against the same database work done
/// as hand-written SQL, in one run, on one database and one broker.
///
/// (a) lifecycle: arrays of TIs through record → instantiate → launch → distributor ids, one phase
///     at a time, each phase timed from the first command produced to the last result read;
/// (b) small commands: launches of 10-TI batches and max-concurrency reads as fast as possible,
///     then launches paced at a fixed rate for latency;
/// (c) the limit: phase (a)'s work as hand-written SQL, no Kafka: per array in a transaction each,
///     per array in one transaction, and grouped (one statement per step for all arrays).
///
/// (a) and (c) run in rounds, each on fresh arrays whose tables were just analyzed (as autovacuum
/// would have done: the plans are those of a database with current statistics). Within a round
/// each step runs via Kafka and as direct SQL back to back, the side that goes first alternating
/// by round, so that background work (checkpoints, autovacuum) falls on both sides alike. A phase
/// lasts about half a second, and on a 2-core machine one round's ratio moves by ±0.1 from run to
/// run; the sum over rounds is steadier.
public struct ServeBenchmark: Sendable {
    public var arrays: Int
    public var tasksPerArray: Int
    public var rounds: Int
    public var smallCommands: Int
    public var pacedRate: Int
    public var pacedSeconds: Int

    public init(arrays: Int = 100, tasksPerArray: Int = 1000, rounds: Int = 3, smallCommands: Int = 50_000, pacedRate: Int = 1000,
                pacedSeconds: Int = 10) {
        self.arrays = arrays
        self.tasksPerArray = tasksPerArray
        self.rounds = max(1, rounds)
        self.smallCommands = smallCommands
        self.pacedRate = pacedRate
        self.pacedSeconds = pacedSeconds
    }

    /// One timed phase.
    public struct Phase: Sendable {
        public var name: String
        public var commands: Int
        public var rows: Int
        public var seconds: Double
        public var latencies: [Double]  // milliseconds, sorted
        /// Medians of where the time went, in milliseconds: send → applied (`processed_at`),
        /// applied → relayed (the result's Kafka timestamp), relayed → read.
        public var stages: (applied: Double, relayed: Double, read: Double)? = nil
        /// The same stages' 99th percentiles: where the tail comes from.
        public var stagesP99: (applied: Double, relayed: Double, read: Double)? = nil
        /// Milliseconds from the first send (wall clock): the first and last command applied
        /// (`processed_at`), the last result relayed (its Kafka timestamp) and read.
        public var span: (firstApplied: Double, lastApplied: Double, lastRelayed: Double, lastRead: Double)? = nil
        public var rowsPerSecond: Double { Double(rows) / seconds }
        public var commandsPerSecond: Double { Double(commands) / seconds }
        public func percentile(_ p: Double) -> Double {
            latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]
        }
    }

    /// One round of (a) and (c) on fresh arrays.
    public struct Round: Sendable {
        /// (a): one phase per lifecycle step.
        public var viaKafka: [Phase]
        /// (c): three phases per lifecycle step: a transaction per array, one transaction for all,
        /// one transaction with one statement per step for all.
        public var direct: [Phase]
    }

    public struct Report: Sendable {
        public var rounds: [Round]
        public var small: [Phase]
    }

    /// Runs everything against `harness` (its servers already started).
    public func run(_ harness: ServiceHarness, logger: Logger, progress: @Sendable (String) -> Void = { _ in }) async throws -> Report {
        let db = harness.database
        let reader = try harness.resultReader()
        try await reader.waitForAssignment()
        defer { Task { await reader.close() } }
        // Warm-up, not reported: the server joins its group and has its partitions before timing starts.
        progress("waiting for serve to take its partitions")
        _ = try await phase(harness, reader, "warm-up", rows: 0, commands: (0..<16).map {
            (Int64($0 + 1), "get_array_max_concurrently_running", ["array_id": Int64.max - Int64($0)] as [String: Any])
        })
        var rounds: [Round] = []
        for round in 1...self.rounds {
            let label = self.rounds > 1 ? "round \(round)/\(self.rounds): " : ""
            progress("\(label)seeding \(arrays) + \(3 * arrays) arrays × \(tasksPerArray) tasks (Kafka, direct SQL)")
            let viaKafka = try await seed(db, count: arrays, tasks: tasksPerArray, logger: logger)
            // Each of the direct SQL's three variants does the whole work on arrays of its own: a
            // variant given half of it ran 10–20% faster per TI (a 100 × 1,000-TI record step as one
            // transaction vs 50 × 1,000), and serve does it whole.
            let viaSQL = try await seed(db, count: 3 * arrays, tasks: tasksPerArray, logger: logger)
            try await db.client.query("VACUUM (ANALYZE) task, task_instance, \"array\"", logger: logger)
            var outcome = Round(viaKafka: [], direct: [])
            for step in Self.lifecycleSteps {
                for viaKafkaNow in round % 2 == 1 ? [true, false] : [false, true] {
                    if viaKafkaNow {
                        progress("\(label)(a) \(step) via Kafka")
                        outcome.viaKafka.append(try await lifecycleStep(step, harness, reader, viaKafka, logger: logger))
                    } else {
                        progress("\(label)(c) \(step) as direct SQL")
                        outcome.direct += try await directStep(step, db, viaSQL, logger: logger)
                    }
                }
            }
            rounds.append(outcome)
        }

        progress("(b) \(smallCommands) launches of 10-TI batches")
        let smallArrays = try await seedInstantiated(db, arrays: max(1, smallCommands / 100), batchesPerArray: 100, batchSize: 10, logger: logger)
        var launches: [(Int64, String, [String: Any])] = []
        for batch in 1...100 {
            for array in smallArrays where launches.count < smallCommands {
                launches.append((array, "transition_array_to_launched", ["array_id": array, "batch_number": batch, "next_report_increment": 279]))
            }
        }
        var small = [try await phase(harness, reader, "launch, 10 TIs each", rows: launches.count * 10, commands: launches)]
        progress("(b) \(smallCommands) get_array_max_concurrently_running")
        small.append(try await phase(harness, reader, "get_array_max_concurrently_running", rows: 0, commands: (0..<smallCommands).map {
            let array = smallArrays[$0 % smallArrays.count]
            return (array, "get_array_max_concurrently_running", ["array_id": array])
        }))
        progress("(b) launches paced at \(pacedRate)/s for \(pacedSeconds) s")
        let pacedArrays = try await seedInstantiated(db, arrays: max(1, pacedRate * pacedSeconds / 100), batchesPerArray: 100, batchSize: 10, logger: logger)
        var paced: [(Int64, String, [String: Any])] = []
        for batch in 1...100 {
            for array in pacedArrays where paced.count < pacedRate * pacedSeconds {
                paced.append((array, "transition_array_to_launched", ["array_id": array, "batch_number": batch, "next_report_increment": 279]))
            }
        }
        small.append(try await phase(harness, reader, "launch at \(pacedRate)/s", rows: paced.count * 10, commands: paced, rate: pacedRate))
        return Report(rounds: rounds, small: small)
    }

    /// The lifecycle's steps, in order.
    static let lifecycleSteps = ["record_array_batch_num", "instantiate_array_batch", "transition_array_to_launched", "log_array_distributor_id"]

    /// (a): one lifecycle step of every array via Kafka.
    func lifecycleStep(
        _ step: String, _ harness: ServiceHarness, _ reader: ResultReader, _ arrays: [ArrayFixture], logger: Logger
    ) async throws -> Phase {
        let rows = arrays.count * tasksPerArray
        var commands: [(Int64, String, [String: Any])] = []
        for array in arrays {
            let payload: [String: Any]
            switch step {
            case "record_array_batch_num":
                payload = ["array_id": array.arrayID, "task_ids": array.taskIDs, "task_resources_id": 1, "workflow_run_id": 1]
            case "instantiate_array_batch":
                payload = ["array_id": array.arrayID, "batch_number": 1]
            case "transition_array_to_launched":
                payload = ["array_id": array.arrayID, "batch_number": 1, "next_report_increment": 279]
            default:
                var map: [String: String] = [:]
                for instance in try await harness.database.taskInstances(arrayID: array.arrayID, logger: logger) {
                    map[String(instance.id)] = "4242_\(instance.stepID)"
                }
                payload = ["array_id": array.arrayID, "distributor_ids": map]
            }
            commands.append((array.arrayID, step, payload))
        }
        return try await phase(harness, reader, step, rows: rows, commands: commands)
    }

    /// Produces the commands (all at once, or `rate` per second) and reads results until every one
    /// is answered; latency is from the send to the result's arrival.
    func phase(
        _ harness: ServiceHarness, _ reader: ResultReader, _ name: String, rows: Int, commands: [(Int64, String, [String: Any])], rate: Int? = nil
    ) async throws -> Phase {
        let tag = UUID().uuidString.prefix(8)
        let encoded = commands.enumerated().map { index, command in
            (key: CommandMessage.key(arrayID: command.0), value: CommandMessage.json(command.1, id: "\(tag)-\(index)", payload: command.2))
        }
        let sentAt = Mutex<[Double]>(Array(repeating: 0, count: encoded.count))
        let start = ContinuousClock.now
        let clock = ContinuousClock.now
        let sentAtWall = Mutex<[Double]>(Array(repeating: 0, count: encoded.count))
        let readTask = Task { () throws -> ([Double], [Stamps]) in
            var latencies: [Double] = []
            var stamps: [Stamps] = []
            var seen = Set<Int>()
            let deadline = ContinuousClock.now + .seconds(600)
            while seen.count < encoded.count && ContinuousClock.now < deadline {
                for record in try await reader.poll() {
                    guard let id = Self.commandIndex(record, tag: tag), !seen.contains(id) else { continue }
                    seen.insert(id)
                    let now = (ContinuousClock.now - clock).seconds
                    latencies.append((now - sentAt.withLock { $0[id] }) * 1000)
                    if let relayed = record.timestampMilliseconds, let applied = Self.processedAt(record) {
                        stamps.append(Stamps(sent: sentAtWall.withLock { $0[id] }, applied: applied, relayed: Double(relayed),
                                             read: Date().timeIntervalSince1970 * 1000))
                    }
                }
            }
            return (latencies, stamps)
        }
        if let rate {
            let perTick = max(1, rate / 100)
            var index = 0
            while index < encoded.count {
                let tickStart = ContinuousClock.now
                let slice = Array(encoded[index..<min(index + perTick, encoded.count)])
                let now = (ContinuousClock.now - clock).seconds
                sentAt.withLock { for offset in 0..<slice.count { $0[index + offset] = now } }
                let wall = Date().timeIntervalSince1970 * 1000
                sentAtWall.withLock { for offset in 0..<slice.count { $0[index + offset] = wall } }
                try await harness.produce(slice.map { ($0.key, $0.value) }, waitForDelivery: false)
                index += slice.count
                let elapsed = ContinuousClock.now - tickStart
                if elapsed < .milliseconds(10) { try await Task.sleep(for: .milliseconds(10) - elapsed) }
            }
        } else {
            let now = (ContinuousClock.now - clock).seconds
            sentAt.withLock { for index in 0..<encoded.count { $0[index] = now } }
            let wall = Date().timeIntervalSince1970 * 1000
            sentAtWall.withLock { for index in 0..<encoded.count { $0[index] = wall } }
            try await harness.produce(encoded.map { ($0.key, $0.value) }, waitForDelivery: false)
        }
        let (unsorted, stamps) = try await readTask.value
        let latencies = unsorted.sorted()
        func quantile(_ values: [Double], _ q: Double) -> Double {
            values.isEmpty ? 0 : values.sorted()[min(values.count - 1, Int(Double(values.count) * q))]
        }
        func median(_ values: [Double]) -> Double { quantile(values, 0.5) }
        func p99(_ values: [Double]) -> Double { quantile(values, 0.99) }
        let seconds = (ContinuousClock.now - start).seconds
        guard latencies.count == encoded.count else {
            throw ChildProcess.Failure(description: "\(name): \(latencies.count) of \(encoded.count) results arrived")
        }
        var phase = Phase(name: name, commands: encoded.count, rows: rows, seconds: seconds, latencies: latencies)
        if !stamps.isEmpty {
            phase.stages = (median(stamps.map { $0.applied - $0.sent }), median(stamps.map { $0.relayed - $0.applied }),
                            median(stamps.map { $0.read - $0.relayed }))
            phase.stagesP99 = (p99(stamps.map { $0.applied - $0.sent }), p99(stamps.map { $0.relayed - $0.applied }),
                               p99(stamps.map { $0.read - $0.relayed }))
            let firstSent = sentAtWall.withLock { $0.min() ?? 0 }
            phase.span = (firstApplied: stamps.map(\.applied).min()! - firstSent, lastApplied: stamps.map(\.applied).max()! - firstSent,
                          lastRelayed: stamps.map(\.relayed).max()! - firstSent, lastRead: stamps.map(\.read).max()! - firstSent)
        }
        return phase
    }

    /// When one command was sent and its result applied (`processed_at`), relayed (the result's
    /// Kafka timestamp) and read: wall-clock milliseconds since 1970, the clock the first two share.
    struct Stamps {
        var sent: Double
        var applied: Double
        var relayed: Double
        var read: Double
    }

    /// A result event's `processed_at` in milliseconds since 1970.
    static func processedAt(_ record: KafkaRecord) -> Double? {
        guard let text = record.stringField("processed_at") else { return nil }
        return try? Date(text, strategy: .iso8601.year().month().day().time(includingFractionalSeconds: true))
            .timeIntervalSince1970 * 1000
    }

    static func commandIndex(_ record: KafkaRecord, tag: Substring) -> Int? {
        guard let id = record.stringField("command_id"), id.hasPrefix(tag) else { return nil }
        return Int(id.dropFirst(tag.count + 1))
    }

    /// (c): one lifecycle step of the arrays as hand-written SQL, in three variants.
    func directStep(_ step: String, _ db: ArrayDatabase, _ arrays: [ArrayFixture], logger: Logger) async throws -> [Phase] {
        // The statements the operations run, written by hand with the same access paths (ids and
        // the (array, batch, step) index), minus everything the service adds around them.
        let steps: [(String, [String])] = [
            ("record_array_batch_num", [
                "UPDATE task SET status = 'Q', status_date = now(), num_attempts = num_attempts + 1 WHERE id = ANY($2) AND status IN ('G', 'A')",
                "UPDATE \"array\" SET last_batch_num = last_batch_num + 1 WHERE id = $1",
                """
                INSERT INTO task_instance (workflow_run_id, array_id, task_id, task_resources_id, array_batch_num, array_step_id, status)
                SELECT 1, $1, id, 1, 1, (n - 1)::int, 'Q' FROM unnest($2::bigint[]) WITH ORDINALITY AS t(id, n)
                """,
            ]),
            ("instantiate_array_batch", [
                """
                UPDATE task SET status = 'I', status_date = now()
                WHERE id IN (SELECT task_id FROM task_instance WHERE array_id = $1 AND array_batch_num = 1 AND status = 'Q') AND status = 'Q'
                """,
                "UPDATE task_instance SET status = 'I', status_date = now() WHERE array_id = $1 AND array_batch_num = 1 AND status = 'Q'",
            ]),
            ("transition_array_to_launched", [
                """
                UPDATE task SET status = 'O', status_date = now()
                WHERE id IN (SELECT task_id FROM task_instance WHERE array_id = $1 AND array_batch_num = 1) AND status = 'I'
                """,
                """
                UPDATE task_instance SET status = 'O', status_date = now(), submitted_date = now(),
                    report_by_date = now() + interval '279 seconds'
                WHERE array_id = $1 AND array_batch_num = 1 AND status = 'I'
                """,
            ]),
            ("log_array_distributor_id", [
                """
                UPDATE task_instance AS ti SET distributor_id = d.distributor_id
                FROM unnest($2::bigint[], $3::text[]) AS d(id, distributor_id)
                WHERE ti.id = d.id AND ti.array_id = $1
                """,
            ]),
        ]
        // A third of the arrays (as many as via Kafka) one transaction each (as a scheduler
        // calling per batch would), a third in one transaction for all (the fewest commits), a third
        // in one transaction with one statement per step for all of them (as the service groups
        // commands); the fastest of the three is the limit.
        let third = arrays.count / 3
        let perArray = Array(arrays.prefix(third))
        let together = Array(arrays.dropFirst(third).prefix(third))
        let grouped = Array(arrays.dropFirst(2 * third).prefix(third))
        var phases: [Phase] = []
        for (name, statements) in steps where name == step {
            var collected: [Int64: ([Int64], [String])] = [:]
            if name == "log_array_distributor_id" {
                for array in arrays {
                    let instances = try await db.taskInstances(arrayID: array.arrayID, logger: logger)
                    collected[array.arrayID] = (instances.map(\.id), instances.map { "4242_\($0.stepID)" })
                }
            }
            let maps = collected
            @Sendable func run(_ array: ArrayFixture, on connection: PostgresConnection) async throws {
                for statement in statements {
                    var binds = PostgresBindings()
                    binds.append(array.arrayID)
                    if statement.contains("$3"), let map = maps[array.arrayID] {
                        binds.append(map.0)
                        binds.append(map.1)
                    } else if statement.contains("$2") {
                        binds.append(array.taskIDs)
                    }
                    try await connection.query(PostgresQuery(unsafeSQL: statement, binds: binds), logger: logger)
                }
            }
            var start = ContinuousClock.now
            for array in perArray {
                try await db.transaction(logger: logger) { connection in try await run(array, on: connection) }
            }
            let perArraySeconds = (ContinuousClock.now - start).seconds
            start = ContinuousClock.now
            try await db.transaction(logger: logger) { connection in
                for array in together { try await run(array, on: connection) }
            }
            let togetherSeconds = (ContinuousClock.now - start).seconds
            let statementsForAll = Self.groupedStatements(name, grouped, maps: maps)
            start = ContinuousClock.now
            try await db.transaction(logger: logger) { connection in
                for statement in statementsForAll { try await connection.query(statement, logger: logger) }
            }
            let groupedSeconds = (ContinuousClock.now - start).seconds
            phases.append(Phase(name: name + " (tx per array)", commands: perArray.count, rows: perArray.count * tasksPerArray,
                                seconds: perArraySeconds, latencies: []))
            phases.append(Phase(name: name + " (one tx)", commands: together.count, rows: together.count * tasksPerArray,
                                seconds: togetherSeconds, latencies: []))
            phases.append(Phase(name: name + " (grouped)", commands: grouped.count, rows: grouped.count * tasksPerArray,
                                seconds: groupedSeconds, latencies: []))
        }
        return phases
    }

    /// (c) for many arrays at once: the same rows changed with one statement per step, as the
    /// service's grouped operations do, minus what they add (locks, status read, returned ids).
    static func groupedStatements(_ step: String, _ arrays: [ArrayFixture], maps: [Int64: ([Int64], [String])]) -> [PostgresQuery] {
        let ids = arrays.map(\.arrayID)
        switch step {
        case "record_array_batch_num":
            let tasks = arrays.flatMap(\.taskIDs)
            let owners = arrays.flatMap { array in array.taskIDs.map { _ in array.arrayID } }
            let steps = arrays.flatMap { array in array.taskIDs.indices.map { Int32($0) } }
            // As runs of consecutive ids, as the service binds them: one index range scan per array
            // instead of one descent per id.
            let runs = IDRuns(tasks)
            return [
                """
                UPDATE task AS t SET status = 'Q', status_date = now(), num_attempts = t.num_attempts + 1
                FROM unnest(\(runs.lows)::bigint[], \(runs.highs)::bigint[]) AS r(lo, hi)
                WHERE t.id BETWEEN r.lo AND r.hi AND t.status IN ('G', 'A')
                """,
                "UPDATE \"array\" SET last_batch_num = last_batch_num + 1 WHERE id = ANY(\(ids))",
                """
                INSERT INTO task_instance (workflow_run_id, array_id, task_id, task_resources_id, array_batch_num, array_step_id, status)
                SELECT 1, array_id, id, 1, 1, step, 'Q' FROM unnest(\(owners)::bigint[], \(tasks)::bigint[], \(steps)::int[]) AS t(array_id, id, step)
                """,
            ]
        case "instantiate_array_batch", "transition_array_to_launched":
            let (from, to, extra): (String, String, String) = step == "instantiate_array_batch"
                ? ("Q", "I", "") : ("I", "O", ", submitted_date = now(), report_by_date = now() + interval '279 seconds'")
            return [
                """
                UPDATE task SET status = \(to), status_date = now()
                WHERE id IN (SELECT task_id FROM task_instance WHERE array_id = ANY(\(ids)) AND array_batch_num = 1 AND status = \(from))
                  AND status = \(from)
                """,
                PostgresQuery(unsafeSQL: """
                    UPDATE task_instance SET status = $1, status_date = now()\(extra)
                    WHERE array_id = ANY($2) AND array_batch_num = 1 AND status = $3
                    """, binds: { var binds = PostgresBindings(); binds.append(to); binds.append(ids); binds.append(from); return binds }()),
            ]
        default:
            let instances = arrays.flatMap { maps[$0.arrayID]?.0 ?? [] }
            let values = arrays.flatMap { maps[$0.arrayID]?.1 ?? [] }
            return [
                """
                UPDATE task_instance AS ti SET distributor_id = d.distributor_id
                FROM unnest(\(instances)::bigint[], \(values)::text[]) AS d(id, distributor_id)
                WHERE ti.id = d.id AND ti.array_id = ANY(\(ids))
                """,
            ]
        }
    }

    func seed(_ db: ArrayDatabase, count: Int, tasks: Int, logger: Logger) async throws -> [ArrayFixture] {
        var arrays: [ArrayFixture] = []
        for _ in 0..<count { arrays.append(try await ArrayFixture.make(db, tasks: tasks, logger: logger)) }
        return arrays
    }

    /// Arrays whose tasks and instances are already in I, in `batchesPerArray` batches of `batchSize`
    /// (written directly, set-based: this is set-up, not what is measured).
    func seedInstantiated(_ db: ArrayDatabase, arrays: Int, batchesPerArray: Int, batchSize: Int, logger: Logger) async throws -> [Int64] {
        var ids: [Int64] = []
        for _ in 0..<arrays {
            let fixture = try await ArrayFixture.make(db, tasks: batchesPerArray * batchSize, status: .instantiating, logger: logger)
            try await db.client.query(
                """
                INSERT INTO task_instance (workflow_run_id, array_id, task_id, task_resources_id, array_batch_num, array_step_id, status)
                SELECT 1, \(fixture.arrayID), id, 1, (rank / \(Int32(batchSize)) + 1)::int, (rank % \(Int32(batchSize)))::int, 'I'
                FROM (SELECT id, (row_number() OVER (ORDER BY id) - 1)::int AS rank FROM task WHERE array_id = \(fixture.arrayID)) AS t
                """, logger: logger)
            try await db.client.query(
                "UPDATE \"array\" SET last_batch_num = \(Int32(batchesPerArray)) WHERE id = \(fixture.arrayID)", logger: logger)
            ids.append(fixture.arrayID)
        }
        try await settle(db, logger: logger)
        return ids
    }

    /// Leaves the database as a steady service would find it before a timed phase: the set-up's
    /// rows vacuumed and analyzed, the outbox's dead rows from the phase before gone, and their
    /// pages written out (as pgbench vacuums before its runs). Without it the paced phase
    /// started with autovacuum of the tables just written and a checkpoint writing the set-up's
    /// pages: stalls of a few hundred milliseconds in its p99 that came from the benchmark's own
    /// set-up (docs: README, "bench-serve").
    func settle(_ db: ArrayDatabase, logger: Logger) async throws {
        try await db.client.query("VACUUM (ANALYZE) task, task_instance, arrayfsm_outbox, arrayfsm_processed_command", logger: logger)
        do {
            try await db.client.query("CHECKPOINT", logger: logger)
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "42501" {
            // CHECKPOINT needs superuser or pg_checkpoint; on a server where the benchmark has
            // neither, the phase simply runs with whatever the checkpointer is doing. Any other
            // error (the server gone, say) ends the benchmark as before.
            logger.notice("CHECKPOINT refused; timing without it", metadata: ["error": "\(String(reflecting: error))"])
        }
    }
}

extension KafkaRecord {
    /// A top-level string field of a result event, found by scanning the bytes for `"name":"`.
    ///
    /// The benchmark reads every result while serve and PostgreSQL run on the same two cores:
    /// parsing whole results (a 1,000-TI command's result lists 2,000 ids) took a fifth of the
    /// machine's CPU during phase (a) and slowed what it measures. Event fields are written by
    /// arrayfsm's encoder without whitespace, and command ids here contain no escapes.
    public func stringField(_ name: String) -> String? {
        guard let value else { return nil }
        let needle = Array("\"\(name)\":\"".utf8)
        return value.withUnsafeBufferPointer { bytes -> String? in
            guard bytes.count > needle.count else { return nil }
            var index = 0
            while index + needle.count <= bytes.count {
                if bytes[index] == needle[0] && needle.indices.allSatisfy({ bytes[index + $0] == needle[$0] }) {
                    let start = index + needle.count
                    guard let end = bytes[start...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
                    return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
                }
                index += 1
            }
            return nil
        }
    }
}

extension Duration {
    /// The duration in seconds, as a floating-point number (for reports and rates).
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
