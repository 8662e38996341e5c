import ArrayFSM
import Logging
import NIOCore
import PostgresNIO

/// The transactional outbox: events written with the database change that caused them,
/// published later by the relay and deleted only after Kafka acknowledged them.
public enum Outbox {
    /// Appends messages in the caller's transaction (one statement, order kept).
    static func insert(_ messages: [OutboxMessage], on connection: PostgresConnection, logger: Logger) async throws {
        guard !messages.isEmpty else { return }
        // unnest takes one-dimensional arrays: headers travel as "name\u{1F}value\u{1F}…", and a
        // NULL key as a false flag.
        let headers = messages.map { $0.headers.joined(separator: "\u{1F}") }
        try await connection.query(
            """
            INSERT INTO arrayfsm_outbox (topic, key, value, headers)
            SELECT topic, CASE WHEN has_key THEN key END, value,
                   CASE WHEN h = '' THEN '{}'::text[] ELSE string_to_array(h, E'\\x1F') END
            FROM unnest(\(messages.map(\.topic))::text[], \(messages.map { $0.key != nil })::bool[],
                        \(messages.map { ByteBuffer(bytes: $0.key ?? []) })::bytea[],
                        \(messages.map { ByteBuffer(bytes: $0.value) })::bytea[], \(headers)::text[])
                 WITH ORDINALITY AS m(topic, has_key, key, value, h, n)
            ORDER BY n
            """, logger: logger)
    }

    /// A row read back for publishing.
    public struct Row: Sendable {
        public var id: Int64
        public var message: OutboxMessage
    }

    /// The oldest `limit` rows, oldest first, leaving out `excluded` (rows already in flight).
    ///
    /// Not "rows after the last one read": identity values are taken at insert and committed
    /// later, so a row with a lower id can appear after a higher one was read.
    public static func oldest(_ limit: Int, excluding excluded: Set<Int64> = [], on connection: PostgresConnection,
                              logger: Logger) async throws -> [Row] {
        let rows = try await connection.query(
            """
            SELECT id, topic, key IS NOT NULL, coalesce(key, ''), value, headers
            FROM arrayfsm_outbox
            WHERE id NOT IN (SELECT unnest(\(Array(excluded))::bigint[]))
            ORDER BY id LIMIT \(limit)
            """, logger: logger)
        var result: [Row] = []
        for try await (id, topic, hasKey, key, value, headers) in rows.decode((Int64, String, Bool, ByteBuffer, ByteBuffer, [String]).self) {
            result.append(
                Row(id: id, message: OutboxMessage(
                    topic: topic, key: hasKey ? Array(key.readableBytesView) : nil, value: Array(value.readableBytesView),
                    headers: headers)))
        }
        return result
    }

    /// Deletes published rows, in a transaction that does not wait for its WAL to reach the disk
    /// (`SET LOCAL synchronous_commit = off`: this transaction only, never the session).
    ///
    /// Losing the delete to a server crash loses nothing: its rows come back and are published
    /// again with the same event ids — at least once, as the contract promises. Waiting for the
    /// flush queued every relay round behind the disk and behind the command transactions'
    /// commits, which must wait for it.
    public static func delete(_ ids: [Int64], on connection: PostgresConnection, logger: Logger) async throws {
        guard !ids.isEmpty else { return }
        try await ArrayDatabase.transaction(on: connection, logger: logger) { connection in
            try await connection.query("SET LOCAL synchronous_commit = off", logger: logger)
            try await connection.query("DELETE FROM arrayfsm_outbox WHERE id = ANY(\(ids))", logger: logger)
        }
    }

    /// Rows waiting to be published.
    public static func depth(on connection: PostgresConnection, logger: Logger) async throws -> Int {
        for try await count in try await connection.query("SELECT count(*) FROM arrayfsm_outbox", logger: logger).decode(Int64.self) {
            return Int(count)
        }
        return 0
    }
}
