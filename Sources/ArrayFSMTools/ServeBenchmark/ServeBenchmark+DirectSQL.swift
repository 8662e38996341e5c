// ArrayFSMTools, bench-serve: the same work as hand-written SQL, the limit the Kafka path is measured against.
import ArrayFSM
import Foundation
import Logging
import PostgresNIO

extension ServeBenchmark {
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
                    let instances = try await Self.distributorIDs(db, arrayID: array.arrayID, logger: logger)
                    collected[array.arrayID] = (instances.map(\.id), instances.map(\.distributorID))
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
}
