import ArrayFSM
import Foundation
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

    /// A row that failed and is waiting for its next attempt: rows after it with the same topic
    /// and key are held back meanwhile, so one key's events still go out in commit order.
    public struct Hold: Sendable {
        public var id: Int64
        public var topic: String
        public var key: [UInt8]
    }

    /// The oldest `limit` rows waiting (not parked), oldest first, leaving out `excluded` (rows in
    /// flight or backing off) and the rows behind `holds`.
    ///
    /// Not "rows after the last one read": identity values are taken at insert and committed
    /// later, so a row with a lower id can appear after a higher one was read.
    public static func oldest(_ limit: Int, excluding excluded: Set<Int64> = [], behind holds: [Hold] = [],
                              on connection: PostgresConnection, logger: Logger) async throws -> [Row] {
        let rows: PostgresRowSequence
        if holds.isEmpty {
            rows = try await connection.query(
                """
                SELECT id, topic, key IS NOT NULL, coalesce(key, ''), value, headers
                FROM arrayfsm_outbox
                WHERE parked_at IS NULL AND id NOT IN (SELECT unnest(\(Array(excluded))::bigint[]))
                ORDER BY id LIMIT \(limit)
                """, logger: logger)
        } else {
            rows = try await connection.query(
                """
                SELECT id, topic, key IS NOT NULL, coalesce(key, ''), value, headers
                FROM arrayfsm_outbox o
                WHERE parked_at IS NULL AND id NOT IN (SELECT unnest(\(Array(excluded))::bigint[]))
                  AND NOT EXISTS (
                      SELECT FROM unnest(\(holds.map(\.id))::bigint[], \(holds.map(\.topic))::text[],
                                         \(holds.map { ByteBuffer(bytes: $0.key) })::bytea[]) AS h(id, topic, key)
                      WHERE h.topic = o.topic AND h.key = o.key AND o.id > h.id)
                ORDER BY id LIMIT \(limit)
                """, logger: logger)
        }
        var result: [Row] = []
        for try await (id, topic, hasKey, key, value, headers) in rows.decode((Int64, String, Bool, ByteBuffer, ByteBuffer, [String]).self) {
            result.append(
                Row(id: id, message: OutboxMessage(
                    topic: topic, key: hasKey ? Array(key.readableBytesView) : nil, value: Array(value.readableBytesView),
                    headers: headers)))
        }
        return result
    }

    /// One failed delivery of a row.
    public struct Failure: Sendable {
        public var id: Int64
        public var error: String
        /// Whether the relay delivered other rows since this row's previous attempt: evidence that
        /// the row itself is refused, not the broker unreachable. Only such a failure parks a row.
        public var othersDelivered: Bool
    }

    /// What recording failures did to one row.
    public struct Attempt: Sendable {
        public var id: Int64
        public var attempts: Int
        public var parked: Bool
    }

    /// Counts failed deliveries, in one statement: attempts, first and last failure, the error; a
    /// row parks when it failed with other rows delivered meanwhile, at least `minimumAttempts`
    /// times, and its first failure is at least `parkAfter` old. Returns the rows' new state
    /// (rows deleted or parked meanwhile are left out).
    public static func recordFailures(_ failures: [Failure], parkAfter: Duration, minimumAttempts: Int,
                                      on connection: PostgresConnection, logger: Logger) async throws -> [Attempt] {
        guard !failures.isEmpty else { return [] }
        let seconds = Double(parkAfter.components.seconds) + Double(parkAfter.components.attoseconds) / 1e18
        let rows = try await connection.query(
            """
            UPDATE arrayfsm_outbox o SET
                attempts = o.attempts + 1,
                first_failed_at = coalesce(o.first_failed_at, now()),
                last_failed_at = now(),
                last_error = f.error,
                parked_at = CASE WHEN f.others_delivered AND o.attempts + 1 >= \(minimumAttempts)
                                      AND coalesce(o.first_failed_at, now()) <= now() - make_interval(secs => \(seconds))
                                 THEN now() END
            FROM unnest(\(failures.map(\.id))::bigint[], \(failures.map(\.error))::text[], \(failures.map(\.othersDelivered))::bool[])
                 AS f(id, error, others_delivered)
            WHERE o.id = f.id AND o.parked_at IS NULL
            RETURNING o.id, o.attempts, o.parked_at IS NOT NULL
            """, logger: logger)
        var result: [Attempt] = []
        for try await (id, attempts, parked) in rows.decode((Int64, Int32, Bool).self) {
            result.append(Attempt(id: id, attempts: Int(attempts), parked: parked))
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

    /// Rows waiting to be published (parked rows are not waiting: the relay no longer reads them).
    public static func depth(on connection: PostgresConnection, logger: Logger) async throws -> Int {
        try await counts(on: connection, logger: logger).waiting
    }

    /// Rows waiting to be published, and rows parked, in one scan.
    public static func counts(on connection: PostgresConnection, logger: Logger) async throws -> (waiting: Int, parked: Int) {
        let rows = try await connection.query(
            "SELECT count(*) FILTER (WHERE parked_at IS NULL), count(*) FILTER (WHERE parked_at IS NOT NULL) FROM arrayfsm_outbox",
            logger: logger)
        for try await (waiting, parked) in rows.decode((Int64, Int64).self) { return (Int(waiting), Int(parked)) }
        return (0, 0)
    }

    /// Rows waiting to be published, counted up to `limit` (the scan stops there, so the cost is
    /// bounded however large the outbox is).
    public static func waiting(upTo limit: Int, on connection: PostgresConnection, logger: Logger) async throws -> Int {
        let rows = try await connection.query(
            "SELECT count(*) FROM (SELECT FROM arrayfsm_outbox WHERE parked_at IS NULL LIMIT \(limit)) AS w", logger: logger)
        for try await count in rows.decode(Int64.self) { return Int(count) }
        return 0
    }

    /// A parked row, as `arrayfsm outbox list` shows it.
    public struct ParkedRow: Sendable {
        public var id: Int64
        public var topic: String
        public var key: [UInt8]?
        /// The value's size in bytes.
        public var size: Int
        public var attempts: Int
        public var firstFailedAt: Date?
        public var lastFailedAt: Date?
        public var parkedAt: Date
        public var error: String
    }

    /// Every parked row, oldest first.
    public static func parked(on connection: PostgresConnection, logger: Logger) async throws -> [ParkedRow] {
        let rows = try await connection.query(
            """
            SELECT id, topic, key, octet_length(value), attempts, first_failed_at, last_failed_at, parked_at, coalesce(last_error, '')
            FROM arrayfsm_outbox WHERE parked_at IS NOT NULL ORDER BY id
            """, logger: logger)
        var result: [ParkedRow] = []
        for try await (id, topic, key, size, attempts, first, last, parked, error)
            in rows.decode((Int64, String, ByteBuffer?, Int32, Int32, Date?, Date?, Date, String).self)
        {
            result.append(ParkedRow(
                id: id, topic: topic, key: key.map { Array($0.readableBytesView) }, size: Int(size), attempts: Int(attempts),
                firstFailedAt: first, lastFailedAt: last, parkedAt: parked, error: error))
        }
        return result
    }

    /// Which parked rows an operator command acts on.
    public enum Selection: Sendable {
        case ids([Int64])
        case all
    }

    /// Clears the parked state (and the failure count) of parked rows, so the relay tries them
    /// again as if new; returns the ids requeued. Rows not parked are left alone.
    public static func requeue(_ selection: Selection, on connection: PostgresConnection, logger: Logger) async throws -> [Int64] {
        let rows: PostgresRowSequence
        switch selection {
        case .all:
            rows = try await connection.query(
                """
                UPDATE arrayfsm_outbox SET parked_at = NULL, attempts = 0, first_failed_at = NULL
                WHERE parked_at IS NOT NULL RETURNING id
                """, logger: logger)
        case .ids(let ids):
            rows = try await connection.query(
                """
                UPDATE arrayfsm_outbox SET parked_at = NULL, attempts = 0, first_failed_at = NULL
                WHERE parked_at IS NOT NULL AND id = ANY(\(ids)) RETURNING id
                """, logger: logger)
        }
        return try await ids(of: rows)
    }

    /// Deletes parked rows (their events are never published); returns the ids dropped. Rows not
    /// parked are left alone: a waiting row is the relay's to publish.
    public static func drop(_ selection: Selection, on connection: PostgresConnection, logger: Logger) async throws -> [Int64] {
        let rows: PostgresRowSequence
        switch selection {
        case .all:
            rows = try await connection.query("DELETE FROM arrayfsm_outbox WHERE parked_at IS NOT NULL RETURNING id", logger: logger)
        case .ids(let ids):
            rows = try await connection.query(
                "DELETE FROM arrayfsm_outbox WHERE parked_at IS NOT NULL AND id = ANY(\(ids)) RETURNING id", logger: logger)
        }
        return try await ids(of: rows)
    }

    private static func ids(of rows: PostgresRowSequence) async throws -> [Int64] {
        var ids: [Int64] = []
        for try await id in rows.decode(Int64.self) { ids.append(id) }
        return ids.sorted()
    }
}
