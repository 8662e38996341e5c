// ArrayFSMTools, bench-serve: what it measures and the order it runs in. It drives a serve through ServiceHarness and
// reads the database directly; it never changes serve.
import ArrayFSM
import ArrayFSMClient
import ArrayFSMService
import Foundation
import Kafka
import Logging
import PostgresNIO


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
    /// librdkafka properties for the benchmark's own client (the producer of commands and the
    /// reader of results), over ``ArrayFSMClient``'s.
    public var clientKafkaProperties: [String: String] = [:]

    public init(arrays: Int = 100, tasksPerArray: Int = 1000, rounds: Int = 3, smallCommands: Int = 50_000, pacedRate: Int = 1000,
                pacedSeconds: Int = 10) {
        self.arrays = arrays
        self.tasksPerArray = tasksPerArray
        self.rounds = max(1, rounds)
        self.smallCommands = smallCommands
        self.pacedRate = pacedRate
        self.pacedSeconds = pacedSeconds
    }

    /// Runs everything against `harness` (its servers already started).
    public func run(_ harness: ServiceHarness, logger: Logger, progress: @Sendable (String) -> Void = { _ in }) async throws -> Report {
        var configuration = harness.clientConfiguration()
        configuration.kafkaProperties.merge(clientKafkaProperties) { $1 }
        return try await ArrayFSMClient.withClient(configuration: configuration, logger: logger) { client in
            try await run(harness, client, logger: logger, progress: progress)
        }
    }

    private func run(_ harness: ServiceHarness, _ client: ArrayFSMClient, logger: Logger, progress: @Sendable (String) -> Void) async throws -> Report {
        let db = harness.database
        // Warm-up, not reported: the server joins its group and has its partitions before timing starts.
        progress("waiting for serve to take its partitions")
        _ = try await phase(client, "warm-up", rows: 0, commands: (0..<16).map { .getArrayMaxConcurrentlyRunning(arrayID: Int64.max - Int64($0)) })
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
                        outcome.viaKafka.append(try await lifecycleStep(step, harness, client, viaKafka, logger: logger))
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
        var launches: [ArrayCommand] = []
        for batch in 1...100 {
            for array in smallArrays where launches.count < smallCommands {
                launches.append(.transitionArrayToLaunched(arrayID: array, batchNumber: Int32(batch), nextReportIncrement: 279))
            }
        }
        var small = [try await phase(client, "launch, 10 TIs each", rows: launches.count * 10, commands: launches)]
        progress("(b) \(smallCommands) get_array_max_concurrently_running")
        small.append(try await phase(client, "get_array_max_concurrently_running", rows: 0, commands: (0..<smallCommands).map {
            .getArrayMaxConcurrentlyRunning(arrayID: smallArrays[$0 % smallArrays.count])
        }))
        progress("(b) launches paced at \(pacedRate)/s for \(pacedSeconds) s")
        let pacedArrays = try await seedInstantiated(db, arrays: max(1, pacedRate * pacedSeconds / 100), batchesPerArray: 100, batchSize: 10, logger: logger)
        var paced: [ArrayCommand] = []
        for batch in 1...100 {
            for array in pacedArrays where paced.count < pacedRate * pacedSeconds {
                paced.append(.transitionArrayToLaunched(arrayID: array, batchNumber: Int32(batch), nextReportIncrement: 279))
            }
        }
        small.append(try await phase(client, "launch at \(pacedRate)/s", rows: paced.count * 10, commands: paced, rate: pacedRate))
        return Report(rounds: rounds, small: small)
    }

    /// The lifecycle's steps, in order.
    static let lifecycleSteps = ["record_array_batch_num", "instantiate_array_batch", "transition_array_to_launched", "log_array_distributor_id"]

    /// (a): one lifecycle step of every array via Kafka.
    func lifecycleStep(
        _ step: String, _ harness: ServiceHarness, _ client: ArrayFSMClient, _ arrays: [ArrayFixture], logger: Logger
    ) async throws -> Phase {
        var commands: [ArrayCommand] = []
        for array in arrays {
            switch step {
            case "record_array_batch_num":
                commands.append(.recordArrayBatchNum(arrayID: array.arrayID, taskIDs: array.taskIDs, taskResourcesID: 1, workflowRunID: 1))
            case "instantiate_array_batch":
                commands.append(.instantiateArrayBatch(arrayID: array.arrayID, batchNumber: 1))
            case "transition_array_to_launched":
                commands.append(.transitionArrayToLaunched(arrayID: array.arrayID, batchNumber: 1, nextReportIncrement: 279))
            default:
                let ids = try await Self.distributorIDs(harness.database, arrayID: array.arrayID, logger: logger)
                commands.append(.logArrayDistributorID(arrayID: array.arrayID, distributorIDs: Dictionary(uniqueKeysWithValues: ids.map { ($0.id, $0.distributorID) })))
            }
        }
        return try await phase(client, step, rows: arrays.count * tasksPerArray, commands: commands)
    }

    /// A made-up distributor id for each of the array's task instances, in batch and step order.
    static func distributorIDs(_ db: ArrayDatabase, arrayID: Int64, logger: Logger) async throws -> [(id: Int64, distributorID: String)] {
        var ids: [(id: Int64, distributorID: String)] = []
        let rows = try await db.client.query(
            "SELECT id, array_step_id FROM task_instance WHERE array_id = \(arrayID) ORDER BY array_batch_num, array_step_id",
            logger: logger)
        for try await (id, stepID) in rows.decode((Int64, Int32).self) { ids.append((id, "4242_\(stepID)")) }
        return ids
    }
}
