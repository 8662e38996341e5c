import ArrayFSM
import ArrayFSMTesting
import ArrayFSMTools
import PostgresNIO
import Testing

@Suite struct MigrationTests {
    @Test func migrateIsIdempotentAndSafeFromTwoProcessesAtOnce() async throws {
        let (url, _) = try await TestPostgres.server()
        let name = "migrate_\(UInt32.random(in: 0...UInt32.max))"
        try await url.withClient(maxConnections: 1, logger: TestPostgres.logger) { client in
            try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"))
        }
        let target = url.withDatabase(name)
        let results = try await withThrowingTaskGroup(of: [Int32].self) { group in
            for _ in 0..<3 {
                group.addTask {
                    try await target.withClient(maxConnections: 1, logger: TestPostgres.logger) { client in
                        try await Migrator().migrate(client, logger: TestPostgres.logger)
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.filter { !$0.isEmpty } == [Migration.all.map(\.version)], "exactly one runner applied them")
        try await target.withClient(maxConnections: 1, logger: TestPostgres.logger) { client in
            #expect(try await Migrator().migrate(client, logger: TestPostgres.logger).isEmpty)
            let rows = try await client.query("SELECT count(*) FROM arrayfsm_migration")
            for try await n in rows.decode(Int64.self) { #expect(n == Int64(Migration.all.count)) }
            let statuses = try await client.query("SELECT (SELECT count(*) FROM task_status), (SELECT count(*) FROM task_instance_status)")
            for try await (tasks, instances) in statuses.decode((Int64, Int64).self) {
                #expect(tasks == Int64(TaskStatus.allCases.count))
                #expect(instances == Int64(TaskInstanceStatus.allCases.count))
            }
        }
        try await url.withClient(maxConnections: 1, logger: TestPostgres.logger) { client in
            try await client.query(PostgresQuery(unsafeSQL: "DROP DATABASE \(name) WITH (FORCE)"))
        }
    }

    /// Migration 6 on a database at version 5: parked rows move to their own table under their
    /// ids, waiting rows stay, and a role that could delete outbox rows may park them (an upgrade
    /// needs no new grant).
    @Test func version6MovesParkedRowsAndGrantsWhoeverMayDeleteOutboxRows() async throws {
        let (url, _) = try await TestPostgres.server()
        let name = "migrate_\(UInt32.random(in: 0...UInt32.max))"
        let role = "serve_\(UInt32.random(in: 0...UInt32.max))"
        try await url.withClient(maxConnections: 1, logger: TestPostgres.logger) { client in
            try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"))
            try await client.query(PostgresQuery(unsafeSQL: "CREATE ROLE \(role)"))
        }
        try await url.withDatabase(name).withClient(maxConnections: 1, logger: TestPostgres.logger) { client in
            try await Migrator(migrations: Migration.all.filter { $0.version <= 5 }).migrate(client, logger: TestPostgres.logger)
            try await client.query(PostgresQuery(unsafeSQL: "GRANT SELECT, INSERT, UPDATE, DELETE ON arrayfsm_outbox TO \(role)"))
            try await client.query(
                """
                INSERT INTO arrayfsm_outbox (topic, value, attempts, last_error, parked_at)
                VALUES ('t', '\\x01', 0, NULL, NULL), ('t', '\\x02', 4, 'refused', now()), ('t', '\\x03', 0, NULL, NULL)
                """)
            #expect(try await Migrator().migrate(client, logger: TestPostgres.logger) == [6])
            let waiting = try await client.query("SELECT id FROM arrayfsm_outbox ORDER BY id").decode(Int64.self).reduce(into: []) { $0.append($1) }
            let parked = try await client.query("SELECT id, attempts, last_error FROM arrayfsm_outbox_parked")
                .decode((Int64, Int32, String).self).reduce(into: []) { $0.append("\($1.0) \($1.1) \($1.2)") }
            #expect(waiting.count == 2 && parked == ["\(waiting[0] + 1) 4 refused"], "waiting \(waiting), parked \(parked)")
            let rights = try await client.query(PostgresQuery(unsafeSQL: """
                SELECT has_table_privilege('\(role)', 'arrayfsm_outbox_parked', 'INSERT'),
                       has_table_privilege('\(role)', 'arrayfsm_outbox_parked', 'DELETE'),
                       has_table_privilege('\(role)', 'arrayfsm_outbox_parked', 'UPDATE')
                """)).decode((Bool, Bool, Bool).self).reduce(into: []) { $0.append([$1.0, $1.1, $1.2]) }
            #expect(rights == [[true, true, false]])
        }
        try await url.withClient(maxConnections: 1, logger: TestPostgres.logger) { client in
            try await client.query(PostgresQuery(unsafeSQL: "DROP DATABASE \(name) WITH (FORCE)"))
            try await client.query(PostgresQuery(unsafeSQL: "DROP ROLE \(role)"))
        }
    }

    @Test func externalToolsCanInsertATaskWithOnlyTheListedColumns() async throws {
        try await TestPostgres.withDatabase { db in
            let array = try await db.perform(AddArray(workflowID: 5, taskTemplateVersionID: 6, name: "x"), logger: TestPostgres.logger)
            try await db.client.query(
                "INSERT INTO task (workflow_id, array_id, status, name) VALUES (5, \(array.arrayID), 'G', 'ext')")
            try await db.client.query("INSERT INTO task (workflow_id, array_id, status) VALUES (5, \(array.arrayID), 'G')")
            #expect(try await db.taskCounts(arrayID: array.arrayID) == ["G": 2])
            await #expect(throws: PSQLError.self) {
                try await db.client.query("INSERT INTO task (workflow_id, array_id, status) VALUES (5, \(array.arrayID), 'Y')")
            }
        }
    }

    @Test func noStatusColumnIsIndexedAndHotTablesLeaveRoom() async throws {
        try await TestPostgres.withDatabase { db in
            let rows = try await db.client.query(
                """
                SELECT count(*) FROM pg_index i
                JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                WHERE i.indrelid IN ('task'::regclass, 'task_instance'::regclass)
                  AND a.attname IN ('status', 'status_date', 'submitted_date', 'report_by_date', 'distributor_id',
                                    'num_attempts', 'stdout', 'stderr')
                """)
            for try await n in rows.decode(Int64.self) { #expect(n == 0) }
            let options = try await db.client.query(
                "SELECT relname::text, array_to_string(reloptions, ',') FROM pg_class WHERE relname IN ('task', 'task_instance')")
            for try await (_, option) in options.decode((String, String).self) { #expect(option == "fillfactor=45") }
        }
    }

    @Test func aStatusTransitionIsAHotUpdate() async throws {
        try await TestPostgres.withDatabase { db in
            let fixture = try await ArrayFixture.make(db, tasks: 2000)
            _ = try await fixture.queueAll(db)
            let hot = try await db.transaction(logger: TestPostgres.logger) { connection in
                _ = try await InstantiateArrayBatch(arrayID: fixture.arrayID, batchNumber: 1).apply(on: connection, logger: TestPostgres.logger)
                _ = try await InstantiateArrayBatch(arrayID: fixture.arrayID, batchNumber: 2).apply(on: connection, logger: TestPostgres.logger)
                let rows = try await connection.query(
                    """
                    SELECT pg_stat_get_xact_tuples_updated('task_instance'::regclass),
                           pg_stat_get_xact_tuples_hot_updated('task_instance'::regclass)
                    """, logger: TestPostgres.logger)
                var result: (Int64, Int64) = (0, 0)
                for try await row in rows.decode((Int64, Int64).self) { result = row }
                return result
            }
            #expect(hot.0 == 2000)
            #expect(hot.1 == 2000, "every task_instance status update was HOT")
        }
    }
}
