// ArrayFSMTools — developer tools the CLI runs: benchmarks, throwaway PostgreSQL, brokers, child
// processes, a serve on a local broker. Never linked into the service itself.
import ArrayFSM
import ArrayFSMClient
import ArrayFSMLoad
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// `arrayfsm bench`: a generated workload (gen + seed) replayed through a running `serve`, timed
/// from the first command produced to the last result read, with latency per command type, and
/// the same database work done as direct SQL in the same run.
public struct LoadBenchmark: Sendable {
    public var spec: LoadSpec

    public init(spec: LoadSpec) { self.spec = spec }

    public struct TypeFigures: Sendable, Codable {
        public var type: String
        public var commands: Int
        public var p50: Double
        public var p95: Double
        public var p99: Double
    }

    public struct Report: Sendable, Codable {
        public var commands: Int
        public var seconds: Double
        public var commandsPerSecond: Double
        /// Task-instance transitions the workload makes (created Q, Q→I, I→O or I→W).
        public var taskInstanceTransitions: Int
        public var transitionsPerSecond: Double
        public var p50: Double
        public var p95: Double
        public var p99: Double
        public var byType: [TypeFigures]
        public var directSeconds: Double
        /// Direct SQL time / time through Kafka: 1 means as fast as the statements alone.
        public var ratioToDirect: Double
    }

    public func run(_ harness: ServiceHarness, logger: Logger, progress: @Sendable (String) -> Void = { _ in }) async throws -> Report {
        let db = harness.database
        progress("seeding \(spec.workflows * spec.arraysPerWorkflow) arrays (twice: for Kafka and for direct SQL)")
        try await Seeder(spec: spec).seed(db.client, logger: logger)
        var directSpec = spec
        directSpec.firstArrayID += 10_000_000
        directSpec.firstWorkflowID += 10_000_000
        directSpec.firstTaskID += 1_000_000_000
        try await Seeder(spec: directSpec).seed(db.client, logger: logger)

        var records: [TopicDumpRecord] = []
        let expectations = WorkloadGenerator(spec: spec, topic: harness.topics.commands).generate { records.append($0) }
        let commands = try records.map { record in
            guard let payload = record.payload, let command = ArrayCommand(envelope: payload, key: record.key) else {
                throw ChildProcess.Failure(description: "the generator wrote a record that is not a command envelope")
            }
            return command
        }
        let (latencies, seconds) = try await ArrayFSMClient.withClient(configuration: harness.clientConfiguration(), logger: logger) { client in
            // Warm-up: serve has its partitions before timing starts.
            _ = try await client.send(.getArrayMaxConcurrentlyRunning(arrayID: Int64.max))
            progress("replaying \(commands.count) commands through serve")
            let start = ContinuousClock.now
            var pending: [PendingAnswer] = []
            for chunk in stride(from: 0, to: commands.count, by: 2000) {
                pending += try await client.submit(Array(commands[chunk..<min(chunk + 2000, commands.count)]))
            }
            var latencies: [Double] = []
            var last = start
            for call in pending {
                let answer = try await call.answer()
                latencies.append(answer.roundTrip.seconds * 1000)
                last = max(last, answer.receivedAt)
            }
            return (latencies, (last - start).seconds)
        }
        let typeOf = commands.map(\.type)

        progress("the same database work as direct SQL")
        let directSeconds = try await direct(directSpec, db, logger: logger)

        func percentiles(_ values: [Double]) -> (Double, Double, Double) {
            let sorted = values.sorted()
            func at(_ p: Double) -> Double { sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
            return (at(0.5), at(0.95), at(0.99))
        }
        var byType: [TypeFigures] = []
        for type in Set(typeOf).sorted() {
            let values = latencies.indices.filter { typeOf[$0] == type }.map { latencies[$0] }
            let (p50, p95, p99) = percentiles(values)
            byType.append(TypeFigures(type: type, commands: values.count, p50: p50, p95: p95, p99: p99))
        }
        let transitions = expectations.reduce(0) { $0 + 3 * $1.batchSizes.values.reduce(0, +) }
        let (p50, p95, p99) = percentiles(latencies)
        return Report(
            commands: records.count, seconds: seconds, commandsPerSecond: Double(records.count) / seconds,
            taskInstanceTransitions: transitions, transitionsPerSecond: Double(transitions) / seconds,
            p50: p50, p95: p95, p99: p99, byType: byType, directSeconds: directSeconds, ratioToDirect: directSeconds / seconds)
    }

    /// The workload's transitions as hand-written statements, one transaction per array: queue and
    /// create the instances, instantiate, launch (or mark W), record the distributor ids.
    func direct(_ spec: LoadSpec, _ db: ArrayDatabase, logger: Logger) async throws -> Double {
        var records: [TopicDumpRecord] = []
        let expectations = WorkloadGenerator(spec: spec).generate { records.append($0) }
        let plan = spec.plan()
        let start = ContinuousClock.now
        for (array, expectation) in zip(plan, expectations) {
            try await db.transaction(logger: logger) { connection in
                let ids = Array(array.taskIDs)
                var offset = 0
                for batch in expectation.batchSizes.keys.sorted() {
                    let chunk = Array(ids[offset..<(offset + expectation.batchSizes[batch]!)])
                    offset += chunk.count
                    let launched = expectation.batchStatus[batch] == "O"
                    try await connection.query(
                        "UPDATE task SET status = 'I', status_date = now(), num_attempts = num_attempts + 1 WHERE id = ANY(\(chunk)) AND status IN ('G', 'A')",
                        logger: logger)
                    try await connection.query(
                        """
                        INSERT INTO task_instance (workflow_run_id, array_id, task_id, task_resources_id, array_batch_num, array_step_id, status)
                        SELECT 1, \(array.arrayID), id, 1, \(batch), (n - 1)::int, 'I' FROM unnest(\(chunk)::bigint[]) WITH ORDINALITY AS t(id, n)
                        """, logger: logger)
                    if launched {
                        try await connection.query(
                            "UPDATE task SET status = 'O', status_date = now() WHERE id = ANY(\(chunk)) AND status = 'I'", logger: logger)
                        let distributorIDs = (0..<chunk.count).map { "9_\($0)" }
                        try await connection.query(
                            """
                            UPDATE task_instance AS ti SET status = 'O', status_date = now(), submitted_date = now(),
                                report_by_date = now() + interval '279 seconds', distributor_id = d.distributor_id
                            FROM unnest(\((0..<Int32(chunk.count)).map { $0 })::int[], \(distributorIDs)::text[]) AS d(step, distributor_id)
                            WHERE ti.array_id = \(array.arrayID) AND ti.array_batch_num = \(batch) AND ti.array_step_id = d.step
                            """, logger: logger)
                    } else {
                        try await connection.query(
                            "UPDATE task_instance SET status = 'W' WHERE array_id = \(array.arrayID) AND array_batch_num = \(batch)", logger: logger)
                    }
                }
                try await connection.query(
                    "UPDATE \"array\" SET last_batch_num = \(Int32(expectation.batchSizes.count)) WHERE id = \(array.arrayID)", logger: logger)
            }
        }
        return (ContinuousClock.now - start).seconds
    }
}

extension LoadBenchmark.Report {
    /// The report as bench prints it, under a line describing `workload`.
    public func summary(workload: LoadSpec) -> String {
        let report = self
        var lines = [
            String(format: "workload: %d workflows × %d arrays, %d–%d tasks per array, batches of %d (seed %llu)",
                   workload.workflows, workload.arraysPerWorkflow, workload.minTasks, workload.maxTasks, workload.batchSize, workload.seed),
            String(format: "through Kafka and serve: %d commands in %.2f s = %.0f commands/s; %d TI transitions = %.0f TIs/s",
                   report.commands, report.seconds, report.commandsPerSecond, report.taskInstanceTransitions, report.transitionsPerSecond),
            String(format: "latency produce → result read (all in flight at once): p50 %.1f ms, p95 %.1f ms, p99 %.1f ms",
                   report.p50, report.p95, report.p99),
            "  type                                  commands    p50 ms    p95 ms    p99 ms",
        ]
        for figures in report.byType {
            lines.append("  " + figures.type.padding(toLength: 36, withPad: " ", startingAt: 0)
                         + String(format: "%10d %9.1f %9.1f %9.1f", figures.commands, figures.p50, figures.p95, figures.p99))
        }
        lines.append(String(format: "the same database work as direct SQL: %.2f s; through Kafka / direct: %.2f×", report.directSeconds, report.ratioToDirect))
        return lines.joined(separator: "\n")
    }
}
