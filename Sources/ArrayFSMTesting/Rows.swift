// ArrayFSMTesting — what only tests import: test databases, row readers, schema checks, a test CA.
import ArrayFSM
import Foundation
import Logging
import PostgresNIO

/// A task row as the tests read it.
public struct TaskRow: Sendable, Hashable {
    public var id: Int64
    public var status: String
    public var numAttempts: Int32
    public var statusDate: Date
}

/// A task instance row as the tests read it.
public struct TaskInstanceRow: Sendable, Hashable {
    public var id: Int64
    public var taskID: Int64
    public var batchNumber: Int32
    public var stepID: Int32
    public var status: String
    public var distributorID: String?
    public var stdout: String?
    public var stderr: String?
    public var statusDate: Date
    public var submittedDate: Date?
    public var reportByDate: Date?
}

extension ArrayDatabase {
    /// The array's tasks, by id.
    public func tasks(arrayID: Int64, logger: Logger = TestPostgres.logger) async throws -> [TaskRow] {
        var rows: [TaskRow] = []
        let result = try await client.query(
            "SELECT id, status, num_attempts, status_date FROM task WHERE array_id = \(arrayID) ORDER BY id", logger: logger)
        for try await (id, status, attempts, date) in result.decode((Int64, String, Int32, Date).self) {
            rows.append(TaskRow(id: id, status: status, numAttempts: attempts, statusDate: date))
        }
        return rows
    }

    /// The array's task instances, by batch and step.
    public func taskInstances(arrayID: Int64, logger: Logger = TestPostgres.logger) async throws -> [TaskInstanceRow] {
        var rows: [TaskInstanceRow] = []
        let result = try await client.query(
            """
            SELECT id, task_id, array_batch_num, array_step_id, status, distributor_id, stdout, stderr,
                   status_date, submitted_date, report_by_date
            FROM task_instance WHERE array_id = \(arrayID) ORDER BY array_batch_num, array_step_id
            """, logger: logger)
        for try await row in result.decode(
            (Int64, Int64, Int32, Int32, String, String?, String?, String?, Date, Date?, Date?).self)
        {
            rows.append(
                TaskInstanceRow(
                    id: row.0, taskID: row.1, batchNumber: row.2, stepID: row.3, status: row.4, distributorID: row.5,
                    stdout: row.6, stderr: row.7, statusDate: row.8, submittedDate: row.9, reportByDate: row.10))
        }
        return rows
    }

    /// Sets the status of the given task instances directly, as a worker or the resume path would.
    public func setTaskInstanceStatus(_ ids: [Int64], to status: TaskInstanceStatus, logger: Logger = TestPostgres.logger) async throws {
        try await client.query("UPDATE task_instance SET status = \(status.rawValue) WHERE id = ANY(\(ids))", logger: logger)
    }

    /// Sets the status of the given tasks directly, as a worker or the resume path would.
    public func setTaskStatus(_ ids: [Int64], to status: TaskStatus, logger: Logger = TestPostgres.logger) async throws {
        try await client.query("UPDATE task SET status = \(status.rawValue) WHERE id = ANY(\(ids))", logger: logger)
    }
}

extension ArrayDatabase {
    /// The status of each task of the array, by status code.
    public func taskCounts(arrayID: Int64, logger: Logger = TestPostgres.logger) async throws -> [String: Int] {
        try await counts(
            "SELECT status, count(*)::bigint FROM task WHERE array_id = \(arrayID) GROUP BY status", logger: logger)
    }

    /// The status of each task instance of the array, by status code.
    public func taskInstanceCounts(arrayID: Int64, logger: Logger = TestPostgres.logger) async throws -> [String: Int] {
        try await counts(
            "SELECT status, count(*)::bigint FROM task_instance WHERE array_id = \(arrayID) GROUP BY status", logger: logger)
    }

    private func counts(_ query: PostgresQuery, logger: Logger) async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for try await (status, count) in try await client.query(query, logger: logger).decode((String, Int64).self) {
            counts[status] = Int(count)
        }
        return counts
    }
}
