// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
import Logging
import PostgresNIO

/// `log_array_distributor_id`: records the cluster's job id of each listed task instance of the
/// array, whatever its status, and optionally its stdout/stderr paths.
///
/// Ids of other arrays and unknown ids are skipped (as in Jobmon) and listed in ``Output/skippedIDs``.
/// `stdout`/`stderr` are templates: `{distributor_id}` and `{task_instance_id}` are substituted.
public struct LogArrayDistributorID: ArrayOperation {
    public var arrayID: Int64
    /// Task instance id → distributor id (conventionally `"<cluster_job_id>_<array_step_id>"`).
    public var distributorIDs: [Int64: String]
    public var stdout: String?
    public var stderr: String?
    /// Extension: the instances named by (batch, step id) instead of by id — what a load generator
    /// (or a distributor that tracks array steps) knows before the ids exist. Used when set.
    public var byStep: (batchNumber: Int32, distributorIDs: [Int32: String])?

    /// The longest distributor id or path template accepted.
    public static let maxTextLength = 4096

    public init(arrayID: Int64, distributorIDs: [Int64: String], stdout: String? = nil, stderr: String? = nil) {
        self.arrayID = arrayID
        self.distributorIDs = distributorIDs
        self.stdout = stdout
        self.stderr = stderr
    }

    /// Names the instances by batch and step id (`distributor_ids_by_step`).
    public init(arrayID: Int64, batchNumber: Int32, distributorIDsByStep: [Int32: String], stdout: String? = nil, stderr: String? = nil) {
        self.init(arrayID: arrayID, distributorIDs: [:], stdout: stdout, stderr: stderr)
        self.byStep = (batchNumber, distributorIDsByStep)
    }

    public struct Output: Sendable, Hashable {
        /// Task instances updated, ascending.
        public var taskInstanceIDs: [Int64]
        /// Requested ids that are unknown or belong to another array, ascending.
        public var skippedIDs: [Int64]
    }

    public func validate() throws(OperationError) {
        try Check.id(arrayID, "array_id")
        if let byStep {
            try Check.batchNumber(byStep.batchNumber)
            guard !byStep.distributorIDs.isEmpty else { throw .invalid("distributor_ids_by_step must not be empty") }
            if let bad = byStep.distributorIDs.keys.first(where: { $0 < 0 }) { throw .invalid("step ids are 0 or more, got \(bad)") }
        } else {
            try Check.ids(Array(distributorIDs.keys), "distributor_ids")
        }
        for value in distributorIDs.values { try Check.text(value, "distributor id", maxBytes: Self.maxTextLength) }
        if let byStep {
            for value in byStep.distributorIDs.values { try Check.text(value, "distributor id", maxBytes: Self.maxTextLength) }
        }
        for (field, template) in [("stdout", stdout), ("stderr", stderr)] {
            if let template { try Check.text(template, "\(field) template", maxBytes: Self.maxTextLength) }
        }
    }

    public func apply(on connection: PostgresConnection, logger: Logger) async throws -> Output {
        _ = try await ArrayRowLock.acquire(arrayID, on: connection, logger: logger)
        if let byStep { return try await applyByStep(byStep, on: connection, logger: logger) }
        let pairs = distributorIDs.sorted { $0.key < $1.key }
        let ids = pairs.map(\.key)
        let values = pairs.map(\.value)
        // One UPDATE … FROM unnest for the whole map (Jobmon builds a CASE branch per id: quadratic).
        let rows = try await connection.query(
            """
            WITH updated AS (
                UPDATE task_instance AS ti
                SET distributor_id = d.distributor_id,
                stdout = coalesce(replace(replace(\(stdout)::text, '{distributor_id}', d.distributor_id),
                                          '{task_instance_id}', ti.id::text), ti.stdout),
                stderr = coalesce(replace(replace(\(stderr)::text, '{distributor_id}', d.distributor_id),
                                          '{task_instance_id}', ti.id::text), ti.stderr)
            FROM unnest(\(ids)::bigint[], \(values)::text[]) AS d(id, distributor_id)
                WHERE ti.id = d.id AND ti.array_id = \(arrayID)
                RETURNING ti.id
            )
            SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM updated
            """, logger: logger)
        var updated: [Int64] = []
        for try await ids in rows.decode([Int64].self) {
            updated = ids
        }
        let updatedSet = Set(updated)
        return Output(taskInstanceIDs: updated, skippedIDs: ids.filter { !updatedSet.contains($0) })
    }

    /// The by-step form: one `UPDATE … FROM unnest` through the (array, batch, step) index.
    /// `skippedIDs` is empty: steps that do not exist are simply not there to update.
    func applyByStep(_ byStep: (batchNumber: Int32, distributorIDs: [Int32: String]), on connection: PostgresConnection,
                     logger: Logger) async throws -> Output {
        let pairs = byStep.distributorIDs.sorted { $0.key < $1.key }
        let rows = try await connection.query(
            """
            WITH updated AS (
                UPDATE task_instance AS ti
                SET distributor_id = d.distributor_id,
                    stdout = coalesce(replace(replace(\(stdout)::text, '{distributor_id}', d.distributor_id),
                                              '{task_instance_id}', ti.id::text), ti.stdout),
                    stderr = coalesce(replace(replace(\(stderr)::text, '{distributor_id}', d.distributor_id),
                                              '{task_instance_id}', ti.id::text), ti.stderr)
                FROM unnest(\(pairs.map(\.key))::int[], \(pairs.map(\.value))::text[]) AS d(step, distributor_id)
                WHERE ti.array_id = \(arrayID) AND ti.array_batch_num = \(byStep.batchNumber) AND ti.array_step_id = d.step
                RETURNING ti.id
            )
            SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM updated
            """, logger: logger)
        var updated: [Int64] = []
        for try await ids in rows.decode([Int64].self) { updated = ids }
        return Output(taskInstanceIDs: updated, skippedIDs: [])
    }
}
