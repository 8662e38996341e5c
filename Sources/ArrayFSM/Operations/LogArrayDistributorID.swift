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
        guard let byStep else { return try await Self.applyGrouped([self], on: connection, logger: logger)[0].get() }
        // By step: the steps' instance ids, read under the array's lock (an instance's step never
        // changes), then the same statement as by id. Steps that do not exist are not there to update.
        _ = try await ArrayRowLock.acquire(arrayID, on: connection, logger: logger)
        let steps = byStep.distributorIDs.keys.sorted()
        let rows = try await connection.query(
            """
            SELECT array_step_id, id FROM task_instance
            WHERE array_id = \(arrayID) AND array_batch_num = \(byStep.batchNumber) AND array_step_id = ANY(\(steps))
            """, logger: logger)
        var byID = LogArrayDistributorID(arrayID: arrayID, distributorIDs: [:], stdout: stdout, stderr: stderr)
        for try await (step, id) in rows.decode((Int32, Int64).self) { byID.distributorIDs[id] = byStep.distributorIDs[step] }
        guard !byID.distributorIDs.isEmpty else { return Output(taskInstanceIDs: [], skippedIDs: []) }
        return try await Self.applyGrouped([byID], on: connection, logger: logger)[0].get()
    }
}

extension LogArrayDistributorID {
    /// Records the distributor ids of many commands (on distinct arrays) in one `UPDATE … FROM unnest`;
    /// results in input order.
    public static func applyGrouped(
        _ operations: [LogArrayDistributorID], on connection: PostgresConnection, logger: Logger
    ) async throws -> [Result<Output, OperationError>] {
        precondition(Set(operations.map(\.arrayID)).count == operations.count, "grouped commands must be on distinct arrays")
        let present = try await ArrayRowLock.acquire(operations.map(\.arrayID), on: connection, logger: logger)

        // One row per task instance (command index, id, distributor id); one row per command for
        // the array and the templates, joined by index, so a template travels once per command.
        var commandIndexes: [Int32] = []
        var instanceIDs: [Int64] = []
        var distributorIDs: [String] = []
        var requested: [[Int64]] = []
        for (index, operation) in operations.enumerated() {
            let pairs = operation.distributorIDs.sorted { $0.key < $1.key }
            requested.append(pairs.map(\.key))
            guard present[operation.arrayID] != nil else { continue }
            for (id, distributorID) in pairs {
                commandIndexes.append(Int32(index))
                instanceIDs.append(id)
                distributorIDs.append(distributorID)
            }
        }
        // Counted, not listed: a command's ids are usually all its array's, and then the statement's
        // row count says everything (each row matches only its own command's array, so the count
        // falls short of the ids named exactly when some command names a stranger); only then are
        // the missing ids looked for.
        var updated = 0
        if !instanceIDs.isEmpty {
            let arrays = operations.map(\.arrayID)
            // Only a run with templates (an arrayfsm extension; Jobmon's distributors send none)
            // reads the instances' old stdout and stderr: carrying them and the templates through
            // the join made the rows it hashes wide enough to spill to disk (100 × 1,000 instances).
            // In both, the ANY repeats the commands' arrays for the planner: without it, it joined
            // them with a scan of the whole table (100 × 1,000 ids among 400k rows: 0.35 s; with it 0.27 s).
            let templated = operations.contains { $0.stdout != nil || $0.stderr != nil }
            updated = try await connection.affectedRows(
                !templated
                    ? """
                    UPDATE task_instance AS ti SET distributor_id = d.distributor_id
                    FROM unnest(\(commandIndexes)::int[], \(instanceIDs)::bigint[], \(distributorIDs)::text[]) AS d(idx, id, distributor_id)
                         JOIN unnest(\(arrays)::bigint[]) WITH ORDINALITY AS c(array_id, n) ON c.n = d.idx + 1
                    WHERE ti.id = d.id AND ti.array_id = c.array_id AND ti.array_id = ANY(\(arrays))
                    """
                    : """
                    WITH c AS (
                        SELECT (n - 1)::int AS idx, array_id, has_stdout, stdout_t, has_stderr, stderr_t
                        FROM unnest(\(arrays)::bigint[],
                                    \(operations.map { $0.stdout != nil })::bool[], \(operations.map { $0.stdout ?? "" })::text[],
                                    \(operations.map { $0.stderr != nil })::bool[], \(operations.map { $0.stderr ?? "" })::text[])
                             WITH ORDINALITY AS c(array_id, has_stdout, stdout_t, has_stderr, stderr_t, n)
                    ), d AS (
                        SELECT * FROM unnest(\(commandIndexes)::int[], \(instanceIDs)::bigint[], \(distributorIDs)::text[])
                            AS d(idx, id, distributor_id)
                    )
                    UPDATE task_instance AS ti
                    SET distributor_id = d.distributor_id,
                        stdout = CASE WHEN c.has_stdout THEN replace(replace(c.stdout_t, '{distributor_id}', d.distributor_id),
                                                                     '{task_instance_id}', d.id::text)
                                      ELSE ti.stdout END,
                        stderr = CASE WHEN c.has_stderr THEN replace(replace(c.stderr_t, '{distributor_id}', d.distributor_id),
                                                                     '{task_instance_id}', d.id::text)
                                      ELSE ti.stderr END
                    FROM d JOIN c ON c.idx = d.idx
                    WHERE ti.id = d.id AND ti.array_id = c.array_id AND ti.array_id = ANY(\(arrays))
                    """,
                logger: logger)
        }

        // The ids not updated: not task instances of the command's array, checked right after the
        // update in the same transaction. Task instances are never deleted nor moved to another
        // array, and their ids are generated, so these are the ids the update skipped.
        var skipped: [Int: [Int64]] = [:]
        if updated < instanceIDs.count {
            let named = operations.indices.filter { present[operations[$0].arrayID] != nil }
            let rows = try await connection.query(
                """
                SELECT d.idx, array_agg(d.id)
                FROM unnest(\(named.flatMap { index in requested[index].map { _ in Int32(index) } })::int[],
                            \(named.flatMap { index in requested[index].map { _ in operations[index].arrayID } })::bigint[],
                            \(named.flatMap { requested[$0] })::bigint[]) AS d(idx, array_id, id)
                WHERE NOT EXISTS (SELECT FROM task_instance AS ti WHERE ti.id = d.id AND ti.array_id = d.array_id)
                GROUP BY d.idx
                """, logger: logger)
            for try await (index, ids) in rows.decode((Int32, [Int64]).self) { skipped[Int(index)] = ids.sorted() }
        }
        return operations.enumerated().map { index, operation in
            guard present[operation.arrayID] != nil else { return .failure(.arrayNotFound(operation.arrayID)) }
            let missing = skipped[index] ?? []
            let missingSet = Set(missing)
            return .success(Output(taskInstanceIDs: requested[index].filter { !missingSet.contains($0) }, skippedIDs: missing))
        }
    }
}

extension LogArrayDistributorID: GroupableOperation {
    public init(payload p: DistributorIDPayload) throws(OperationError) {
        if let byStep = p.distributor_ids_by_step {
            guard let batch = p.batch_number else { throw .invalid("distributor_ids_by_step needs batch_number") }
            var steps: [Int32: String] = [:]
            for (key, value) in byStep {
                guard let step = Int32(key), String(step) == key else {
                    throw .invalid("distributor_ids_by_step key '\(key.prefix(40))' is not a step id in plain decimal")
                }
                steps[step] = value
            }
            self.init(arrayID: p.array_id, batchNumber: batch, distributorIDsByStep: steps, stdout: p.stdout, stderr: p.stderr)
            return
        }
        let map: [Int64: String]
        if let readAhead = p.readAheadIDs {
            map = readAhead
        } else {
            guard let ids = p.distributor_ids else { throw .invalid("distributor_ids is required") }
            var decoded: [Int64: String] = [:]
            decoded.reserveCapacity(ids.count)
            for (key, value) in ids {
                // Canonical decimal only: "05" and "5" would otherwise both name instance 5.
                guard let id = Int64(key), String(id) == key else {
                    throw .invalid("distributor_ids key '\(key.prefix(40))' is not a task instance id in plain decimal")
                }
                decoded[id] = value
            }
            map = decoded
        }
        self.init(arrayID: p.array_id, distributorIDs: map, stdout: p.stdout, stderr: p.stderr)
    }

    public static func answer(_ output: Output) -> CommandAnswer {
        CommandAnswer(.logArrayDistributorID(taskInstances: output.taskInstanceIDs.count, skipped: output.skippedIDs))
    }

    /// Only maps by id are grouped; by step goes alone.
    public var groupingArrayID: Int64? { byStep == nil ? arrayID : nil }
    public var boundIDs: Int { distributorIDs.count }
}

/// `log_array_distributor_id`'s payload.
// swiftlint:disable identifier_name
public struct DistributorIDPayload: Decodable {
    public var array_id: Int64
    public var distributor_ids: [String: String]?
    /// `distributor_ids` as ``PayloadReader`` read it, when it could; then
    /// `distributor_ids` is not decoded again.
    public var readAheadIDs: [Int64: String]?
    public var batch_number: Int32?
    public var distributor_ids_by_step: [String: String]?
    public var stdout: String?
    public var stderr: String?

    static let readAhead = CodingUserInfoKey(rawValue: "arrayfsm.distributorIDs")!

    enum CodingKeys: String, CodingKey {
        case array_id, distributor_ids, batch_number, distributor_ids_by_step, stdout, stderr
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        array_id = try c.decode(Int64.self, forKey: .array_id)
        if let map = decoder.userInfo[Self.readAhead] as? [Int64: String], c.contains(.distributor_ids) {
            readAheadIDs = map
        } else {
            distributor_ids = try c.decodeIfPresent([String: String].self, forKey: .distributor_ids)
        }
        batch_number = try c.decodeIfPresent(Int32.self, forKey: .batch_number)
        distributor_ids_by_step = try c.decodeIfPresent([String: String].self, forKey: .distributor_ids_by_step)
        stdout = try c.decodeIfPresent(String.self, forKey: .stdout)
        stderr = try c.decodeIfPresent(String.self, forKey: .stderr)
    }
}
// swiftlint:enable identifier_name
