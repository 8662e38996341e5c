// ArrayFSMTools, bench-scale: the cost per task instance of each operation as the tables grow.
import ArrayFSM
import Foundation
import Logging
import PostgresNIO

/// Times record, instantiate, launch, distributor ids and kill per task instance, for batches of
/// several sizes, in tables that already hold growing numbers of other arrays' rows.
///
/// Levels are reached in ascending order by seeding the difference (``ScaleSeeder``), then
/// `VACUUM (ANALYZE)` and a `CHECKPOINT`, so a measurement sees grown tables, not the
/// checkpointer's work left by the seeding. Each repeat creates a fresh array of the batch's
/// size and runs the five operations on it, each in one transaction on the same connection, as
/// a Jobmon lifecycle does: record (G → Q, one batch), instantiate (Q → I), launch (I → O),
/// distributor ids (on O), then, after the instances are set to K with plain SQL (untimed),
/// kill (K → F). The timed arrays are deleted before the next level is seeded, so a level's
/// row count is the seeded rows plus only that level's own timed arrays.
public struct ScaleBenchmark: Sendable {
    /// Rows of other arrays in `task_instance` (and as many in `task`) to measure at, ascending.
    public var levels: [Int]
    /// Task instances per timed batch.
    public var batches: [Int]
    /// Fresh arrays per (level, batch size); the median is reported.
    public var repeats: Int
    /// Task instances per seeded array.
    public var seedArraySize: Int
    /// Whether each level's seeding is followed by `VACUUM (ANALYZE)` and a `CHECKPOINT`. Without
    /// them the timed operations meet what seeding left: tuples without hint bits, pages not yet
    /// all-visible, no statistics, and the checkpointer writing the seed (and full-page images
    /// after its next checkpoint starts).
    public var settle: Bool
    /// Tasks in each timed array, of which one batch is timed; nil: as many as the batch. The
    /// others are queued first (untimed, batches of up to 100,000) and the tables analyzed, as a
    /// workflow's array waits in Q while its batches are instantiated one by one.
    public var timedArrayTasks: Int?

    public init(levels: [Int] = [0, 1_000_000, 10_000_000, 20_000_000], batches: [Int] = [1_000, 10_000, 100_000],
                repeats: Int = 3, seedArraySize: Int = 5_000, settle: Bool = true, timedArrayTasks: Int? = nil) {
        self.timedArrayTasks = timedArrayTasks
        self.levels = levels.sorted()
        self.batches = batches.sorted()
        self.repeats = repeats
        self.seedArraySize = seedArraySize
        self.settle = settle
    }

    /// The operations timed, in lifecycle order.
    public enum Operation: String, CaseIterable, Sendable {
        case record, instantiate, launch
        case distributorIDs = "distributor ids"
        case kill
    }

    /// Where the run is, for a progress line: `done` of `total` in `phase`.
    public struct Progress: Sendable {
        public var phase: String
        public var done: Int
        public var total: Int
    }

    /// Errors in the benchmark's own set-up (its arguments, an operation that moved too few rows).
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Checks the sizes before anything is seeded.
    public func validate() throws {
        guard !levels.isEmpty, levels.allSatisfy({ $0 >= 0 }) else { throw Failure(description: "levels must be 0 or more, at least one") }
        guard !batches.isEmpty, batches.allSatisfy({ (1...100_000).contains($0) }) else {
            throw Failure(description: "batch sizes must be in 1...100000 (one batch of record_array_batch_num), at least one")
        }
        guard repeats >= 1 else { throw Failure(description: "repeats must be 1 or more") }
        guard seedArraySize >= 1 else { throw Failure(description: "the seeded arrays' size must be 1 or more") }
    }

    /// Runs every level; `progress` is called as seeding and measuring advance.
    public func run(_ database: ArrayDatabase, logger: Logger, progress: (Progress) -> Void = { _ in }) async throws -> ScaleReport {
        try validate()
        let client = database.client
        let seeder = ScaleSeeder(arraySize: seedArraySize)
        var seeded = 0
        var levelReports: [ScaleReport.Level] = []
        var measurements: [ScaleReport.Measurement] = []
        for level in levels {
            var levelReport = try await seed(from: seeded, to: level, seeder: seeder, client: client, logger: logger, progress: progress)
            seeded = level
            levelReport.commitMilliseconds = try await commitLatency(client, logger: logger)
            levelReport.loadAverage = Self.loadAverage()
            levelReports.append(levelReport)

            let phase = "measuring at \(ScaleReport.count(level)) rows"
            let steps = batches.count * repeats * Operation.allCases.count
            var done = 0
            var timedArrays: [Int64] = []
            progress(Progress(phase: phase, done: 0, total: steps))
            for batch in batches {
                var samples: [Operation: [Sample]] = [:]
                for _ in 0..<repeats {
                    let (arrayID, lifecycle) = try await timeLifecycle(tasks: batch, database, logger: logger) {
                        done += 1
                        progress(Progress(phase: phase, done: done, total: steps))
                    }
                    timedArrays.append(arrayID)
                    for (operation, sample) in lifecycle { samples[operation, default: []].append(sample) }
                }
                for operation in Operation.allCases {
                    measurements.append(ScaleReport.Measurement(level: level, batch: batch, operation: operation, samples: samples[operation] ?? []))
                }
            }
            try await deleteArrays(timedArrays, client: client, logger: logger)
        }
        return ScaleReport(
            levels: levelReports, measurements: measurements, settings: try await settings(client, logger: logger),
            repeats: repeats, seedArraySize: seedArraySize, timedArrayTasks: timedArrayTasks)
    }

    /// One timed operation: wall time of its transaction (BEGIN … COMMIT) and the counters' deltas.
    struct Sample: Sendable {
        var seconds: Double
        var taskInstances: Int
        var counters: ServerCounters
    }

    /// A fresh array of `tasks` tasks through the five operations, each timed in its own transaction.
    private func timeLifecycle(
        tasks: Int, _ database: ArrayDatabase, logger: Logger, stepDone: () -> Void
    ) async throws -> (Int64, [(Operation, Sample)]) {
        let fixture = try await ArrayFixture.make(database, tasks: max(tasks, timedArrayTasks ?? tasks), logger: logger)
        let arrayID = fixture.arrayID
        let others = Array(fixture.taskIDs.dropFirst(tasks))
        if !others.isEmpty {
            _ = try await database.perform(
                RecordArrayBatchNum(arrayID: arrayID, taskIDs: others, taskResourcesID: 1, workflowRunID: 1,
                                    chunkSize: Int32(min(others.count, 100_000))), logger: logger)
            // As autovacuum would after that many rows: the planner then knows the array's queue.
            try await database.client.query("ANALYZE task, task_instance", logger: logger)
        }
        return try await database.client.withConnection { connection in
            var samples: [(Operation, Sample)] = []
            let record = RecordArrayBatchNum(
                arrayID: arrayID, taskIDs: Array(fixture.taskIDs.prefix(tasks)), taskResourcesID: 1, workflowRunID: 1, chunkSize: Int32(tasks))
            let (recorded, recordSample) = try await timed(record, on: connection, logger: logger) { $0.batches.first?.taskInstanceIDs.count ?? 0 }
            samples.append((.record, recordSample))
            stepDone()
            guard let batch = recorded.batches.first, recorded.batches.count == 1 else {
                throw Failure(description: "record made \(recorded.batches.count) batches of array \(arrayID), expected one")
            }
            let number = batch.batchNumber

            samples.append((.instantiate, try await timed(
                InstantiateArrayBatch(arrayID: arrayID, batchNumber: number), on: connection, logger: logger) { $0.taskInstanceIDs.count }.1))
            stepDone()
            samples.append((.launch, try await timed(
                TransitionArrayToLaunched(arrayID: arrayID, batchNumber: number, nextReportIncrement: 279),
                on: connection, logger: logger) { $0.taskInstanceIDs.count }.1))
            stepDone()
            var distributorIDs: [Int64: String] = [:]
            distributorIDs.reserveCapacity(batch.taskInstanceIDs.count)
            for (step, id) in batch.taskInstanceIDs.enumerated() { distributorIDs[id] = "\(9_000_000 + arrayID)_\(step)" }
            samples.append((.distributorIDs, try await timed(
                LogArrayDistributorID(arrayID: arrayID, distributorIDs: distributorIDs), on: connection, logger: logger) { $0.taskInstanceIDs.count }.1))
            stepDone()

            // Set-up for kill, untimed: the launched instances told to kill themselves (their tasks stay in O).
            try await connection.query(
                "UPDATE task_instance SET status = 'K', status_date = now() WHERE array_id = \(arrayID) AND array_batch_num = \(number) AND status = 'O'",
                logger: logger)
            samples.append((.kill, try await timed(
                TransitionToKilled(arrayID: arrayID, batchNumber: number), on: connection, logger: logger) { $0.taskInstanceIDs.count }.1))
            stepDone()

            for (operation, sample) in samples where sample.taskInstances != tasks {
                throw Failure(description: "\(operation.rawValue) moved \(sample.taskInstances) of \(tasks) task instances of array \(arrayID)")
            }
            return (arrayID, samples)
        }
    }

    /// Validates `operation` (outside the clock, as serve does when it decodes a command), then
    /// applies it in one transaction on `connection` and measures it.
    private func timed<Op: ArrayOperation>(
        _ operation: Op, on connection: PostgresConnection, logger: Logger, count: (Op.Output) -> Int
    ) async throws -> (Op.Output, Sample) {
        try operation.validate()
        let before = try await ServerCounters.read(on: connection, logger: logger)
        let start = ContinuousClock.now
        let output = try await ArrayDatabase.transaction(on: connection, logger: logger) { connection in
            try await operation.apply(on: connection, logger: logger)
        }
        let seconds = (ContinuousClock.now - start).seconds
        let after = try await ServerCounters.read(on: connection, logger: logger)
        return (output, Sample(seconds: seconds, taskInstances: count(output), counters: after - before))
    }

    /// Seeds the rows from `current` to `level`, then vacuums, analyzes and checkpoints; measures each step.
    private func seed(
        from current: Int, to level: Int, seeder: ScaleSeeder, client: PostgresClient, logger: Logger, progress: (Progress) -> Void
    ) async throws -> ScaleReport.Level {
        var report = ScaleReport.Level(rows: level)
        let wal = try await client.withConnection { try await ServerCounters.read(on: $0, logger: logger) }
        let phase = "seeding \(ScaleReport.count(level - current)) rows (to \(ScaleReport.count(level)))"
        let seedStart = ContinuousClock.now
        if level > current {
            progress(Progress(phase: phase, done: 0, total: level - current))
            try await seeder.seed(rows: level - current, client: client, logger: logger) { written in
                progress(Progress(phase: phase, done: written, total: level - current))
            }
        }
        report.seedSeconds = (ContinuousClock.now - seedStart).seconds
        report.seedWALBytes = try await client.withConnection { try await ServerCounters.read(on: $0, logger: logger) }.walBytes - wal.walBytes

        report.settled = settle
        if settle { try await settleTables(&report, client: client, logger: logger, progress: progress) }

        let rows = try await client.query(
            """
            SELECT (SELECT count(*) FROM task_instance), pg_total_relation_size('task'), pg_total_relation_size('task_instance'),
                   pg_database_size(current_database())
            """, logger: logger)
        for try await (count, task, taskInstance, database) in rows.decode((Int64, Int64, Int64, Int64).self) {
            report.taskInstanceRows = Int(count)
            report.taskBytes = task
            report.taskInstanceBytes = taskInstance
            report.databaseBytes = database
        }
        return report
    }

    /// `VACUUM (ANALYZE)` and a `CHECKPOINT` after seeding, each timed into `report`.
    private func settleTables(
        _ report: inout ScaleReport.Level, client: PostgresClient, logger: Logger, progress: (Progress) -> Void
    ) async throws {
        progress(Progress(phase: "VACUUM (ANALYZE) and CHECKPOINT", done: 0, total: 1))
        let vacuumStart = ContinuousClock.now
        try await client.query(#"VACUUM (ANALYZE) "array", task, task_instance"#, logger: logger)
        report.vacuumSeconds = (ContinuousClock.now - vacuumStart).seconds
        let checkpointStart = ContinuousClock.now
        do {
            try await client.query("CHECKPOINT", logger: logger)
            report.checkpointSeconds = (ContinuousClock.now - checkpointStart).seconds
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "42501" {
            // CHECKPOINT needs superuser or pg_checkpoint: without it the level is measured with
            // whatever the checkpointer still has to write, and the report says so.
            report.checkpointSeconds = nil
        }
        progress(Progress(phase: "VACUUM (ANALYZE) and CHECKPOINT", done: 1, total: 1))
    }

    /// The median wall time of 20 transactions that only take a transaction id and commit (one
    /// WAL flush each): the fixed cost every timed transaction pays, at the level's moment. A
    /// small batch's µs/TI moves with it, whatever the tables hold.
    private func commitLatency(_ client: PostgresClient, logger: Logger) async throws -> Double {
        try await client.withConnection { connection in
            var samples: [Double] = []
            for _ in 0..<20 {
                let start = ContinuousClock.now
                try await ArrayDatabase.transaction(on: connection, logger: logger) { connection in
                    _ = try await connection.query("SELECT txid_current()", logger: logger)
                }
                samples.append((ContinuousClock.now - start).seconds * 1000)
            }
            return samples.sorted()[samples.count / 2]
        }
    }

    /// This machine's 1-minute load average (Linux), nil elsewhere: other work on a shared machine
    /// shows up in the figures.
    static func loadAverage() -> Double? {
        (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").first.flatMap { Double($0) }
    }

    /// Removes the timed arrays with their tasks and instances (untimed).
    private func deleteArrays(_ ids: [Int64], client: PostgresClient, logger: Logger) async throws {
        guard !ids.isEmpty else { return }
        try await client.query("DELETE FROM task_instance WHERE array_id = ANY(\(ids))", logger: logger)
        try await client.query("DELETE FROM task WHERE array_id = ANY(\(ids))", logger: logger)
        try await client.query("DELETE FROM \"array\" WHERE id = ANY(\(ids))", logger: logger)
    }

    /// The server settings a reader needs to compare runs.
    private func settings(_ client: PostgresClient, logger: Logger) async throws -> [(String, String)] {
        let names = ["server_version", "shared_buffers", "max_wal_size", "checkpoint_timeout", "wal_compression",
                     "full_page_writes", "synchronous_commit", "fsync", "autovacuum", "work_mem"]
        let rows = try await client.query(
            "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(\(names))", logger: logger)
        var found: [String: String] = [:]
        for try await (name, value) in rows.decode((String, String).self) { found[name] = value }
        return names.compactMap { name in found[name].map { (name, $0) } }
    }
}
