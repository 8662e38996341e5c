// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
import Logging
import PostgresNIO

/// `instantiate_task_instances` (Jobmon's `POST /task_instance/instantiate_task_instances`, the
/// distributor's Q → I step): the tasks of the listed instances that are in Q move to I, then
/// the listed instances in Q whose task is now I move to I. The answer groups every listed
/// instance that is in I afterwards (moved now or before: a repeat answers the same batches) by
/// array, array name, batch number and task resources, as Jobmon's route does. Ids that name no
/// instance are left out of the answer, as Jobmon leaves them out.
///
/// Unlike Jobmon's route, an instance moves only from Q: one that is already past I (or was
/// killed) keeps its status and is not in the answer.
public struct InstantiateTaskInstances: ArrayOperation {
    public var taskInstanceIDs: [Int64]

    public init(taskInstanceIDs: [Int64]) {
        self.taskInstanceIDs = taskInstanceIDs
    }

    /// One entry of `task_instance_batches`.
    public struct Batch: Sendable, Hashable {
        public var arrayID: Int64
        public var arrayName: String
        public var batchNumber: Int32
        public var taskResourcesID: Int64?
        /// Ascending.
        public var taskInstanceIDs: [Int64]
    }

    public struct Output: Sendable, Hashable {
        /// Ordered by array, batch number and task resources.
        public var batches: [Batch]
        public var transitions: [TransitionGroup]
    }

    /// Empty is allowed (Jobmon answers it with no batches).
    public func validate() throws(OperationError) {
        guard !taskInstanceIDs.isEmpty else { return }
        try Check.ids(taskInstanceIDs, "task_instance_ids")
    }

    public func apply(on connection: PostgresConnection, logger: Logger) async throws -> Output {
        try await Self.applyGrouped([self], on: connection, logger: logger)[0].get()
    }

    /// Applies commands with disjoint id lists together: one read of their arrays, one lock of
    /// those arrays (ascending), one statement. A task with listed instances in several commands
    /// is moved, and reported, by the first of them, as applying them in order would.
    public static func applyGrouped(
        _ operations: [InstantiateTaskInstances], on connection: PostgresConnection, logger: Logger
    ) async throws -> [Result<Output, OperationError>] {
        var ids: [Int64] = []
        var commands: [Int32] = []
        for (index, operation) in operations.enumerated() {
            ids += operation.taskInstanceIDs
            commands += repeatElement(Int32(index), count: operation.taskInstanceIDs.count)
        }
        var outputs = Array(repeating: Output(batches: [], transitions: []), count: operations.count)
        guard !ids.isEmpty else { return outputs.map { .success($0) } }
        // Every operation locks its arrays before it changes their rows; the arrays are the
        // instances' own, and an instance never changes array.
        let arrays = try await connection.query(
            "SELECT DISTINCT array_id FROM task_instance WHERE id = ANY(\(ids)) ORDER BY array_id", logger: logger
        ).decode(Int64.self).reduce(into: []) { $0.append($1) }
        guard !arrays.isEmpty else { return outputs.map { .success($0) } }
        _ = try await ArrayRowLock.acquire(arrays, on: connection, logger: logger)
        // The instances' join with `task` sees the statement's snapshot, where the tasks moved by
        // `tasks` are still in Q: hence "already I, or moved now".
        let rows = try await connection.query(
            """
            WITH listed AS (
                SELECT DISTINCT ON (ti.id) ti.id, l.n, ti.task_id, ti.array_id, ti.array_batch_num, ti.task_resources_id, ti.status
                FROM unnest(\(ids)::bigint[], \(commands)::int[]) AS l(id, n) JOIN task_instance AS ti ON ti.id = l.id
                ORDER BY ti.id, l.n
            ), tasks AS (
                UPDATE task SET status = 'I', status_date = now()
                FROM (SELECT DISTINCT ON (task_id) task_id, n, array_batch_num FROM listed ORDER BY task_id, n) AS first
                WHERE task.id = first.task_id AND task.status = 'Q'
                RETURNING task.id, first.n, task.array_id, first.array_batch_num
            ), instances AS (
                UPDATE task_instance AS ti SET status = 'I', status_date = now()
                FROM listed AS l JOIN task ON task.id = l.task_id
                WHERE ti.id = l.id AND ti.status = 'Q'
                  AND (task.status = 'I' OR task.id IN (SELECT id FROM tasks))
                RETURNING ti.id, l.n, ti.array_id, ti.array_batch_num
            )
            SELECT 'task', n, array_id, array_batch_num, NULL::bigint, NULL::text, array_agg(id)
            FROM tasks GROUP BY n, array_id, array_batch_num
            UNION ALL
            SELECT 'task_instance', n, array_id, array_batch_num, NULL, NULL, array_agg(id)
            FROM instances GROUP BY n, array_id, array_batch_num
            UNION ALL
            SELECT 'batch', l.n, l.array_id, l.array_batch_num, l.task_resources_id, a.name, array_agg(l.id)
            FROM listed AS l JOIN "array" AS a ON a.id = l.array_id
            WHERE l.status = 'I' OR l.id IN (SELECT id FROM instances)
            GROUP BY l.n, l.array_id, a.name, l.array_batch_num, l.task_resources_id
            """, logger: logger)
        for try await (kind, command, arrayID, batchNumber, resources, name, unordered) in rows.decode(
            (String, Int32, Int64, Int32, Int64?, String?, [Int64]).self)
        {
            let ids = unordered.sorted()
            switch kind {
            case "task":
                outputs[Int(command)].transitions.append(
                    .tasks(.queued, .instantiating, arrayID: arrayID, batchNumber: batchNumber, ids: ids))
            case "task_instance":
                outputs[Int(command)].transitions.append(
                    .taskInstances(.queued, .instantiated, arrayID: arrayID, batchNumber: batchNumber, ids: ids))
            default:
                outputs[Int(command)].batches.append(
                    Batch(arrayID: arrayID, arrayName: name ?? "", batchNumber: batchNumber, taskResourcesID: resources,
                          taskInstanceIDs: ids))
            }
        }
        return outputs.map { output in
            var output = output
            output.batches.sort { ($0.arrayID, $0.batchNumber, $0.taskResourcesID ?? 0) < ($1.arrayID, $1.batchNumber, $1.taskResourcesID ?? 0) }
            output.transitions.sort { ($0.arrayID, $0.batchNumber ?? 0, $0.entity.rawValue) < ($1.arrayID, $1.batchNumber ?? 0, $1.entity.rawValue) }
            return .success(output)
        }
    }
}

extension InstantiateTaskInstances: GroupableOperation {
    public init(payload p: InstantiateTaskInstancesPayload) {
        self.init(taskInstanceIDs: p.task_instance_ids)
    }

    public static func answer(_ output: Output) -> CommandAnswer {
        CommandAnswer(.taskInstanceBatches(output.batches), transitions: output.transitions)
    }

    /// Its instances keep commands of one run apart: the arrays are known only to the database.
    public var groupingArrayID: Int64? { nil }
    public var groupingIDs: [Int64]? { taskInstanceIDs }
    public var boundIDs: Int { taskInstanceIDs.count }
}

/// `instantiate_task_instances`'s payload (Jobmon's request body).
// swiftlint:disable identifier_name
public struct InstantiateTaskInstancesPayload: Decodable {
    public var task_instance_ids: [Int64]
}
// swiftlint:enable identifier_name
