// ArrayFSMTools — developer tools the CLI runs: benchmarks, throwaway PostgreSQL, brokers, child
// processes, a serve on a local broker. Never linked into the service itself.
import ArrayFSM
import Foundation
import Logging
import PostgresNIO

/// Times `transition_array_to_launched` through the operation against the same work as
/// hand-written SQL, and against a copy of the tables carrying Jobmon's index set.
///
/// Every variant starts from the same state (all task instances of the batch in I, tables
/// vacuumed) and the variants alternate, so machine noise spreads over all of them.
public struct LaunchBenchmark: Sendable {
    public var tasks: Int
    public var repeats: Int
    /// Batches for the per-batch rate (Jobmon's figure is for 1000-TI batches).
    public var smallBatchSize: Int32
    public var smallBatches: Int

    public init(tasks: Int = 100_000, repeats: Int = 3, smallBatchSize: Int32 = 1000, smallBatches: Int = 100) {
        self.tasks = tasks
        self.repeats = repeats
        self.smallBatchSize = smallBatchSize
        self.smallBatches = smallBatches
    }

    /// One timed launch.
    public struct Sample: Sendable {
        public var seconds: Double
        public var taskInstances: Int
        /// Share of this launch's row updates that were HOT, per table (from the transaction's own counters).
        public var hotTask: Double
        public var hotTaskInstance: Double
        public var rowsPerSecond: Double { Double(taskInstances) / seconds }
    }

    /// The medians and what they mean.
    public struct Report: Sendable {
        public var operation: Sample
        /// The same two UPDATEs written by hand, returning the moved ids as the operation does.
        public var direct: Sample
        /// The two UPDATEs returning only a count: the floor, with nothing for the events.
        public var bare: Sample
        public var jobmonIndexes: Sample
        public var smallBatchOperationRate: Double
        public var smallBatchDirectRate: Double
        public var tableStats: [(table: String, updates: Int64, hotUpdates: Int64)]
        public var settings: [(String, String)]
        /// What was run: tasks in the big batch, repeats per variant, 1000-TI batches.
        public var tasks: Int
        public var repeats: Int
        public var smallBatches: Int
    }

    /// Jobmon's measured launch rate on these machines, per 1000-TI batch.
    public static let jobmonLaunchRate = 2_800.0

    public func run(_ database: ArrayDatabase, logger: Logger, progress: (String) -> Void = { _ in }) async throws -> Report {
        let client = database.client
        progress("seeding an array of \(tasks) tasks and queueing it as one batch")
        let big = try await ArrayFixture.make(database, tasks: tasks, logger: logger)
        _ = try await big.queueAll(database, chunkSize: Int32(min(tasks, 100_000)), logger: logger)
        _ = try await database.perform(InstantiateArrayBatch(arrayID: big.arrayID, batchNumber: 1), logger: logger)

        progress("copying it into tables with Jobmon's index set")
        for statement in Self.jobmonTables {
            try await client.query(PostgresQuery(unsafeSQL: statement), logger: logger)
        }
        try await client.query("INSERT INTO bench_jobmon_task SELECT * FROM task WHERE array_id = \(big.arrayID)", logger: logger)
        try await client.query(
            "INSERT INTO bench_jobmon_task_instance SELECT * FROM task_instance WHERE array_id = \(big.arrayID)", logger: logger)

        var operation: [Sample] = []
        var direct: [Sample] = []
        var bare: [Sample] = []
        var jobmon: [Sample] = []
        for round in 1...repeats {
            progress("round \(round)/\(repeats): operation, direct SQL, bare SQL, Jobmon's indexes")
            try await reset(client, task: "task", taskInstance: "task_instance", arrayID: big.arrayID, logger: logger)
            operation.append(
                try await timed(database, task: "task", taskInstance: "task_instance", logger: logger) { connection in
                    try await TransitionArrayToLaunched(arrayID: big.arrayID, batchNumber: 1, nextReportIncrement: 279)
                        .apply(on: connection, logger: logger).taskInstanceIDs.count
                })
            try await reset(client, task: "task", taskInstance: "task_instance", arrayID: big.arrayID, logger: logger)
            direct.append(
                try await timed(database, task: "task", taskInstance: "task_instance", logger: logger) { connection in
                    try await Self.directLaunch(on: connection, task: "task", taskInstance: "task_instance", arrayID: big.arrayID,
                                                batch: 1, returningIDs: true, logger: logger)
                })
            try await reset(client, task: "task", taskInstance: "task_instance", arrayID: big.arrayID, logger: logger)
            bare.append(
                try await timed(database, task: "task", taskInstance: "task_instance", logger: logger) { connection in
                    try await Self.directLaunch(on: connection, task: "task", taskInstance: "task_instance", arrayID: big.arrayID,
                                                batch: 1, logger: logger)
                })
            try await reset(client, task: "bench_jobmon_task", taskInstance: "bench_jobmon_task_instance", arrayID: big.arrayID,
                            logger: logger)
            jobmon.append(
                try await timed(database, task: "bench_jobmon_task", taskInstance: "bench_jobmon_task_instance", logger: logger) {
                    connection in
                    try await Self.directLaunch(on: connection, task: "bench_jobmon_task", taskInstance: "bench_jobmon_task_instance",
                                                arrayID: big.arrayID, batch: 1, logger: logger)
                })
        }

        progress("\(smallBatches) batches of \(smallBatchSize) through the operation and as direct SQL")
        let smallOperation = try await smallBatchRate(database, logger: logger) { connection, arrayID, batch in
            try await TransitionArrayToLaunched(arrayID: arrayID, batchNumber: batch, nextReportIncrement: 279)
                .apply(on: connection, logger: logger).taskInstanceIDs.count
        }
        let smallDirect = try await smallBatchRate(database, logger: logger) { connection, arrayID, batch in
            try await Self.directLaunch(on: connection, task: "task", taskInstance: "task_instance", arrayID: arrayID, batch: batch,
                                        returningIDs: true, logger: logger)
        }

        // Cumulative counters (they include the resets, which are bulk updates of the same rows).
        try await client.query("SELECT pg_stat_force_next_flush()", logger: logger)
        try await Task.sleep(for: .milliseconds(1200))
        var tableStats: [(String, Int64, Int64)] = []
        let stats = try await client.query(
            """
            SELECT relname::text, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables
            WHERE relname IN ('task', 'task_instance', 'bench_jobmon_task', 'bench_jobmon_task_instance')
            ORDER BY relname
            """, logger: logger)
        for try await row in stats.decode((String, Int64, Int64).self) { tableStats.append(row) }
        var settings: [(String, String)] = []
        let shown = try await client.query(
            """
            SELECT name, setting FROM pg_settings
            WHERE name IN ('server_version', 'fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers')
            ORDER BY name
            """, logger: logger)
        for try await row in shown.decode((String, String).self) { settings.append(row) }
        for statement in ["DROP TABLE bench_jobmon_task_instance", "DROP TABLE bench_jobmon_task"] {
            try await client.query(PostgresQuery(unsafeSQL: statement), logger: logger)
        }
        return Report(
            operation: Self.median(operation), direct: Self.median(direct), bare: Self.median(bare), jobmonIndexes: Self.median(jobmon),
            smallBatchOperationRate: smallOperation, smallBatchDirectRate: smallDirect,
            tableStats: tableStats, settings: settings, tasks: tasks, repeats: repeats, smallBatches: smallBatches)
    }

    /// The hand-written statements: the launch's two UPDATEs, each returning the moved ids
    /// (what the events need) or, for the floor, only a count.
    static func directLaunch(
        on connection: PostgresConnection, task: String, taskInstance: String, arrayID: Int64, batch: Int32,
        returningIDs: Bool = false, logger: Logger
    ) async throws -> Int {
        let result = returningIDs ? "coalesce(array_agg(id), '{}')" : "'{}'::bigint[]"
        let tasks = try await connection.query(
            PostgresQuery(
                unsafeSQL: """
                    WITH moved AS (
                        UPDATE \(task) SET status = 'O', status_date = now()
                        WHERE status = 'I' AND array_id = $1
                          AND id IN (SELECT task_id FROM \(taskInstance) WHERE array_id = $1 AND array_batch_num = $2)
                        RETURNING id
                    )
                    SELECT count(*), \(result) FROM moved
                    """, binds: try Self.binds(arrayID, batch)), logger: logger)
        for try await _ in tasks.decode((Int64, [Int64]).self) {}
        var moved = 0
        let instances = try await connection.query(
            PostgresQuery(
                unsafeSQL: """
                    WITH moved AS (
                        UPDATE \(taskInstance)
                        SET status = 'O', status_date = now(), submitted_date = now(),
                            report_by_date = now() + interval '279 seconds'
                        WHERE array_id = $1 AND array_batch_num = $2 AND status = 'I'
                        RETURNING id
                    )
                    SELECT count(*), \(result) FROM moved
                    """, binds: try Self.binds(arrayID, batch)), logger: logger)
        for try await (count, _) in instances.decode((Int64, [Int64]).self) { moved = Int(count) }
        return moved
    }

    private static func binds(_ arrayID: Int64, _ batch: Int32) throws -> PostgresBindings {
        var binds = PostgresBindings()
        binds.append(arrayID)
        binds.append(batch)
        return binds
    }

    /// Puts the array's tasks and instances back in I and vacuums, so each variant starts alike.
    private func reset(_ client: PostgresClient, task: String, taskInstance: String, arrayID: Int64, logger: Logger) async throws {
        try await client.query(
            PostgresQuery(unsafeSQL: "UPDATE \(task) SET status = 'I' WHERE array_id = $1 AND status <> 'I'",
                          binds: try Self.binds(arrayID, 0)), logger: logger)
        try await client.query(
            PostgresQuery(unsafeSQL: "UPDATE \(taskInstance) SET status = 'I', report_by_date = NULL WHERE array_id = $1 AND status <> 'I'",
                          binds: try Self.binds(arrayID, 0)), logger: logger)
        try await client.query(PostgresQuery(unsafeSQL: "VACUUM (ANALYZE) \(task), \(taskInstance)"), logger: logger)
    }

    /// Times one transaction (BEGIN … COMMIT) and reads its own HOT counters before it commits.
    private func timed(
        _ database: ArrayDatabase, task: String, taskInstance: String, logger: Logger,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> Int
    ) async throws -> Sample {
        let start = ContinuousClock.now
        let (moved, hotTask, hotTI) = try await database.transaction(logger: logger) { connection in
            let moved = try await body(connection)
            var hot = (0.0, 0.0)
            let rows = try await connection.query(
                PostgresQuery(
                    unsafeSQL: """
                        SELECT pg_stat_get_xact_tuples_hot_updated($1::regclass)::float8
                                   / greatest(pg_stat_get_xact_tuples_updated($1::regclass), 1),
                               pg_stat_get_xact_tuples_hot_updated($2::regclass)::float8
                                   / greatest(pg_stat_get_xact_tuples_updated($2::regclass), 1)
                        """,
                    binds: {
                        var binds = PostgresBindings()
                        binds.append(task)
                        binds.append(taskInstance)
                        return binds
                    }()), logger: logger)
            for try await row in rows.decode((Double, Double).self) { hot = row }
            return (moved, hot.0, hot.1)
        }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return Sample(seconds: seconds, taskInstances: moved, hotTask: hotTask, hotTaskInstance: hotTI)
    }

    /// Launches `smallBatches` fresh batches one transaction each; returns TIs/s over all of them.
    private func smallBatchRate(
        _ database: ArrayDatabase, logger: Logger,
        _ launch: @escaping @Sendable (PostgresConnection, Int64, Int32) async throws -> Int
    ) async throws -> Double {
        let fixture = try await ArrayFixture.make(database, tasks: Int(smallBatchSize) * smallBatches, logger: logger)
        let queued = try await fixture.queueAll(database, chunkSize: smallBatchSize, logger: logger)
        for batch in queued.batches {
            _ = try await database.perform(InstantiateArrayBatch(arrayID: fixture.arrayID, batchNumber: batch.batchNumber), logger: logger)
        }
        try await database.client.query("VACUUM (ANALYZE) task, task_instance", logger: logger)
        var moved = 0
        let start = ContinuousClock.now
        for batch in queued.batches {
            moved += try await database.transaction(logger: logger) { connection in
                try await launch(connection, fixture.arrayID, batch.batchNumber)
            }
        }
        let elapsed = ContinuousClock.now - start
        return Double(moved) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    private static func median(_ samples: [Sample]) -> Sample {
        samples.sorted { $0.seconds < $1.seconds }[samples.count / 2]
    }

    /// Copies of `task` and `task_instance` with Jobmon's index set: every status column indexed
    /// (plus its other secondary indexes), default fillfactor — 9 secondary indexes on task, 12 on task_instance.
    static let jobmonTables: [String] = [
        "DROP TABLE IF EXISTS bench_jobmon_task_instance",
        "DROP TABLE IF EXISTS bench_jobmon_task",
        "CREATE TABLE bench_jobmon_task (LIKE task INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
        "ALTER TABLE bench_jobmon_task ADD PRIMARY KEY (id)",
        "CREATE INDEX ON bench_jobmon_task (workflow_id)",
        "CREATE INDEX ON bench_jobmon_task (array_id)",
        "CREATE INDEX ON bench_jobmon_task (name)",
        "CREATE INDEX ON bench_jobmon_task (status)",
        "CREATE INDEX ON bench_jobmon_task (status_date)",
        "CREATE INDEX ON bench_jobmon_task (task_resources_id)",
        "CREATE INDEX ON bench_jobmon_task (num_attempts)",
        "CREATE INDEX ON bench_jobmon_task (workflow_id, status)",
        "CREATE INDEX ON bench_jobmon_task (array_id, status)",
        "CREATE TABLE bench_jobmon_task_instance (LIKE task_instance INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
        "ALTER TABLE bench_jobmon_task_instance ADD PRIMARY KEY (id)",
        "CREATE INDEX ON bench_jobmon_task_instance (array_id, array_batch_num, array_step_id)",
        "CREATE INDEX ON bench_jobmon_task_instance (array_id)",
        "CREATE INDEX ON bench_jobmon_task_instance (array_batch_num)",
        "CREATE INDEX ON bench_jobmon_task_instance (task_id)",
        "CREATE INDEX ON bench_jobmon_task_instance (workflow_run_id)",
        "CREATE INDEX ON bench_jobmon_task_instance (task_resources_id)",
        "CREATE INDEX ON bench_jobmon_task_instance (distributor_id)",
        "CREATE INDEX ON bench_jobmon_task_instance (status)",
        "CREATE INDEX ON bench_jobmon_task_instance (status_date)",
        "CREATE INDEX ON bench_jobmon_task_instance (submitted_date)",
        "CREATE INDEX ON bench_jobmon_task_instance (report_by_date)",
        "CREATE INDEX ON bench_jobmon_task_instance (workflow_run_id, status)",
    ]
}

extension LaunchBenchmark.Report {
    /// The report as bench-sql prints it.
    public var summary: String {
        let report = self
        func row(_ name: String, _ sample: LaunchBenchmark.Sample) -> String {
            name.padding(toLength: 34, withPad: " ", startingAt: 0)
                + String(format: "%8.3f s %10.0f TIs/s   HOT task %5.1f%%  task_instance %5.1f%%",
                         sample.seconds, sample.rowsPerSecond, sample.hotTask * 100, sample.hotTaskInstance * 100)
        }
        var lines = [
            "launch of one \(tasks)-TI batch (I → O), median of \(repeats), one transaction each:",
            row("  operation (arrayfsm)", report.operation),
            row("  direct SQL returning the ids", report.direct),
            row("  bare SQL (count only)", report.bare),
            row("  bare SQL, Jobmon's indexes", report.jobmonIndexes),
            String(format: "  operation / direct SQL:           %.2f×  (target ≥ 0.90×)",
                   report.operation.rowsPerSecond / report.direct.rowsPerSecond),
            String(format: "  operation / bare SQL:             %.2f×  (the floor: returns nothing the events need)",
                   report.operation.rowsPerSecond / report.bare.rowsPerSecond),
            String(format: "  arrayfsm schema / Jobmon indexes: %.2f×  (bare SQL on both)",
                   report.bare.rowsPerSecond / report.jobmonIndexes.rowsPerSecond),
            "\(smallBatches) batches of 1000 TIs, one transaction each:",
            String(format: "  operation  %10.0f TIs/s = %.1f× Jobmon's %.0f TIs/s (target ≥ 10×)",
                   report.smallBatchOperationRate, report.smallBatchOperationRate / LaunchBenchmark.jobmonLaunchRate,
                   LaunchBenchmark.jobmonLaunchRate),
            String(format: "  direct SQL returning the ids %10.0f TIs/s; operation / direct = %.2f×",
                   report.smallBatchDirectRate, report.smallBatchOperationRate / report.smallBatchDirectRate),
            "pg_stat_user_tables (whole run, resets included):",
        ]
        for (table, updates, hot) in report.tableStats {
            lines.append(
                "  " + table.padding(toLength: 28, withPad: " ", startingAt: 0)
                    + String(format: "n_tup_upd %9d  n_tup_hot_upd %9d  HOT %5.1f%%", updates, hot,
                             updates == 0 ? 0 : Double(hot) / Double(updates) * 100))
        }
        lines.append("settings: " + report.settings.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
        return lines.joined(separator: "\n")
    }
}
