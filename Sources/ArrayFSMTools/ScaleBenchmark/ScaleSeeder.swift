// ArrayFSMTools, bench-scale: the other arrays that fill the tables before a level is measured.
import Logging
import PostgresNIO

/// Adds finished arrays of other workflows to `array`, `task` and `task_instance`: what the
/// timed arrays share their tables and indexes with.
///
/// Each seeded array has ``arraySize`` tasks and as many task instances, in batches of 1,000
/// (step ids 0..<1000), mostly done (one in 50 failed for good), with distributor ids, dates and
/// usage filled in as a finished Jobmon task instance has them. An array's tasks get consecutive
/// ids and are written in id order, so its rows sit together as a real array's would. Seeded
/// arrays have `task_template_version_id` 0, which no real array has.
///
/// The rows go in with COPY (postgres-nio's `copyFrom`, text format), as a bulk loader would
/// write them: one COPY per table per statement's worth of arrays, each its own transaction. The
/// database must have no other writer while it seeds: it reserves id ranges from the identity
/// sequences and writes those ids itself.
struct ScaleSeeder: Sendable {
    /// Task instances (and tasks) per seeded array.
    var arraySize: Int
    /// Rows per statement: the step progress is reported in.
    var rowsPerStatement: Int = 500_000

    /// Adds `rows` task instances (and as many tasks) in arrays of ``arraySize``, the last one
    /// smaller if `rows` is not a multiple of it; `progress` gets the rows written so far.
    func seed(rows: Int, client: PostgresClient, logger: Logger, progress: (Int) -> Void) async throws {
        var written = 0
        while written < rows {
            let remaining = rows - written
            let arrays = max(1, min(remaining / arraySize, max(1, rowsPerStatement / arraySize)))
            let size = min(arraySize, remaining)
            try await insert(arrays: arrays, size: size, client: client, logger: logger)
            written += arrays * size
            progress(written)
        }
    }

    /// `arrays` arrays of `size` tasks and task instances each.
    private func insert(arrays: Int, size: Int, client: PostgresClient, logger: Logger) async throws {
        let firstArray = try await reserve(arrays, of: "\"array\"", client: client, logger: logger)
        let firstTask = try await reserve(arrays * size, of: "task", client: client, logger: logger)
        let batches = (size + 999) / 1000
        let (created, finished, submitted) = ("2026-01-01 09:00:00+00", "2026-01-01 11:00:00+00", "2026-01-01 10:00:00+00")
        try await client.withConnection { connection in
            try await connection.copyFrom(
                table: "array",
                columns: ["id", "name", "task_template_version_id", "workflow_id", "max_concurrently_running", "last_batch_num", "created_date"],
                logger: logger
            ) { writer in
                var buffer = ByteBuffer()
                for a in 0..<Int64(arrays) {
                    let id = firstArray + a
                    buffer.writeString("\(id)\tseed-\(id)\t0\t\(id)\t10000\t\(batches)\t\(created)\n")
                }
                try await writer.write(buffer)
            }
            try await copy(table: "task", columns: ["id", "workflow_id", "array_id", "name", "num_attempts", "task_resources_id", "status", "status_date"],
                           firstArray: firstArray, arrays: arrays, size: size, on: connection, logger: logger) { buffer, array, step in
                let status = step % 50 == 49 ? "F" : "D"
                buffer.writeString("\(firstTask + (array - firstArray) * Int64(size) + step)\t\(array)\t\(array)\ttask-\(step)\t1\t1\t\(status)\t\(finished)\n")
            }
            try await copy(
                table: "task_instance",
                columns: ["workflow_run_id", "array_id", "task_id", "task_resources_id", "array_batch_num", "array_step_id", "distributor_id",
                          "status", "status_date", "submitted_date", "report_by_date", "nodename", "process_group_id", "wallclock", "maxrss", "cpu"],
                firstArray: firstArray, arrays: arrays, size: size, on: connection, logger: logger
            ) { buffer, array, step in
                let status = step % 50 == 49 ? "F" : "D"
                let task = firstTask + (array - firstArray) * Int64(size) + step
                buffer.writeString(
                    "\(array)\t\(array)\t\(task)\t1\t\(step / 1000 + 1)\t\(step % 1000)\t\(7_000_000 + array)_\(step % 1000)\t\(status)\t\(finished)\t"
                        + "\(submitted)\t\(finished)\tnode-\(step % 64)\t\(10_000 + step % 30_000)\t3412.5\t1048576\t3400.2\n")
            }
        }
    }

    /// One COPY of `size` rows per array, arrays in order and each array's rows in step order (so
    /// an array's rows sit together, as a real array's do), sent in pieces of about 1 MB.
    private func copy(
        table: String, columns: [String], firstArray: Int64, arrays: Int, size: Int, on connection: PostgresConnection, logger: Logger,
        row: (inout ByteBuffer, _ array: Int64, _ step: Int64) -> Void
    ) async throws {
        try await connection.copyFrom(table: table, columns: columns, logger: logger) { writer in
            var buffer = ByteBuffer()
            buffer.reserveCapacity(1 << 21)
            for a in 0..<Int64(arrays) {
                let array = firstArray + a
                for step in 0..<Int64(size) {
                    row(&buffer, array, step)
                    if buffer.readableBytes > 1 << 20 {
                        try await writer.write(buffer)
                        buffer.clear()
                    }
                }
            }
            try await writer.write(buffer)
        }
    }

    /// Takes `count` consecutive values from `table`'s id sequence; returns the first.
    private func reserve(_ count: Int, of table: String, client: PostgresClient, logger: Logger) async throws -> Int64 {
        let rows = try await client.query(
            """
            SELECT setval(seq, nextval(seq) + \(count)::bigint - 1) - \(count)::bigint + 1
            FROM (SELECT pg_get_serial_sequence(\(table), 'id')::regclass AS seq) AS s
            """, logger: logger)
        for try await first in rows.decode(Int64.self) { return first }
        throw ReserveFailed(table: table)
    }

    private struct ReserveFailed: Error, CustomStringConvertible {
        var table: String
        var description: String { "could not reserve ids from \(table)'s sequence" }
    }
}
