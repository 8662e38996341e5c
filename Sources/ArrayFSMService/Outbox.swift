// ArrayFSMService — the processor: command batches from Kafka, one transaction each, the outbox
// and its relay, readiness and metrics. Uses ArrayFSM for the domain and Kafka for the wire.
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

    /// The oldest `limit` rows, oldest first, leaving out `excluded` (rows in flight or backing
    /// off) and the rows behind `holds`. (Parked rows are in `arrayfsm_outbox_parked`: a filter on
    /// them here made PostgreSQL scan and sort the whole queue when it had no statistics; V6.)
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
                WHERE id NOT IN (SELECT unnest(\(Array(excluded))::bigint[]))
                ORDER BY id LIMIT \(limit)
                """, logger: logger)
        } else {
            rows = try await connection.query(
                """
                SELECT id, topic, key IS NOT NULL, coalesce(key, ''), value, headers
                FROM arrayfsm_outbox o
                WHERE id NOT IN (SELECT unnest(\(Array(excluded))::bigint[]))
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
    /// row parks — moves to `arrayfsm_outbox_parked`, keeping its id — when it failed with other
    /// rows delivered meanwhile, at least `minimumAttempts` times, and its first failure is at
    /// least `parkAfter` old. Returns the rows' new state (rows deleted meanwhile are left out).
    public static func recordFailures(_ failures: [Failure], parkAfter: Duration, minimumAttempts: Int,
                                      on connection: PostgresConnection, logger: Logger) async throws -> [Attempt] {
        guard !failures.isEmpty else { return [] }
        let seconds = Double(parkAfter.components.seconds) + Double(parkAfter.components.attoseconds) / 1e18
        // The counted and the parked rows are disjoint, so one statement may update the one and
        // move the other.
        let rows = try await connection.query(
            """
            WITH failed AS (
                SELECT o.id, o.attempts + 1 AS attempts, coalesce(o.first_failed_at, now()) AS first_failed_at, f.error,
                       f.others_delivered AND o.attempts + 1 >= \(minimumAttempts)
                           AND coalesce(o.first_failed_at, now()) <= now() - make_interval(secs => \(seconds)) AS park
                FROM arrayfsm_outbox o
                JOIN unnest(\(failures.map(\.id))::bigint[], \(failures.map(\.error))::text[], \(failures.map(\.othersDelivered))::bool[])
                     AS f(id, error, others_delivered) ON o.id = f.id
            ), counted AS (
                UPDATE arrayfsm_outbox o
                SET attempts = failed.attempts, first_failed_at = failed.first_failed_at, last_failed_at = now(), last_error = failed.error
                FROM failed WHERE o.id = failed.id AND NOT failed.park
                RETURNING o.id, o.attempts
            ), moved AS (
                DELETE FROM arrayfsm_outbox o USING failed WHERE o.id = failed.id AND failed.park
                RETURNING o.id, o.topic, o.key, o.value, o.headers, o.created_at, failed.attempts, failed.first_failed_at, failed.error
            ), parked AS (
                INSERT INTO arrayfsm_outbox_parked
                    (id, topic, key, value, headers, created_at, attempts, first_failed_at, last_failed_at, last_error)
                SELECT id, topic, key, value, headers, created_at, attempts, first_failed_at, now(), error FROM moved
                RETURNING id, attempts
            )
            SELECT id, attempts, false FROM counted UNION ALL SELECT id, attempts, true FROM parked
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

    /// Rows waiting to be published (parked rows are not waiting: they are in a table of their own).
    public static func depth(on connection: PostgresConnection, logger: Logger) async throws -> Int {
        try await counts(on: connection, logger: logger).waiting
    }

    /// Rows waiting to be published, and rows parked.
    public static func counts(on connection: PostgresConnection, logger: Logger) async throws -> (waiting: Int, parked: Int) {
        let rows = try await connection.query(
            "SELECT (SELECT count(*) FROM arrayfsm_outbox), (SELECT count(*) FROM arrayfsm_outbox_parked)",
            logger: logger)
        for try await (waiting, parked) in rows.decode((Int64, Int64).self) { return (Int(waiting), Int(parked)) }
        return (0, 0)
    }

    /// Rows waiting to be published, counted up to `limit` (the scan stops there, so the cost is
    /// bounded however large the outbox is).
    public static func waiting(upTo limit: Int, on connection: PostgresConnection, logger: Logger) async throws -> Int {
        let rows = try await connection.query(
            "SELECT count(*) FROM (SELECT FROM arrayfsm_outbox LIMIT \(limit)) AS w", logger: logger)
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
            FROM arrayfsm_outbox_parked ORDER BY id
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

        /// As binds: every row, or these ids.
        var bound: (all: Bool, ids: [Int64]) {
            switch self {
            case .all: (true, [])
            case .ids(let ids): (false, ids)
            }
        }
    }

    /// Moves parked rows back into the outbox under their own ids (so before the rows committed
    /// after them), without their failure count, and the relay tries them again as if new;
    /// returns the ids requeued. Ids that are not parked are left alone.
    public static func requeue(_ selection: Selection, on connection: PostgresConnection, logger: Logger) async throws -> [Int64] {
        let (all, selected) = selection.bound
        let rows = try await connection.query(
            """
            WITH moved AS (
                DELETE FROM arrayfsm_outbox_parked WHERE \(all) OR id = ANY(\(selected))
                RETURNING id, topic, key, value, headers, created_at
            )
            INSERT INTO arrayfsm_outbox (id, topic, key, value, headers, created_at) OVERRIDING SYSTEM VALUE
            SELECT id, topic, key, value, headers, created_at FROM moved
            RETURNING id
            """, logger: logger)
        return try await ids(of: rows)
    }

    /// Deletes parked rows (their events are never published); returns the ids dropped. Waiting
    /// rows are left alone: they are the relay's to publish.
    public static func drop(_ selection: Selection, on connection: PostgresConnection, logger: Logger) async throws -> [Int64] {
        let (all, selected) = selection.bound
        let rows = try await connection.query(
            "DELETE FROM arrayfsm_outbox_parked WHERE \(all) OR id = ANY(\(selected)) RETURNING id", logger: logger)
        return try await ids(of: rows)
    }

    private static func ids(of rows: PostgresRowSequence) async throws -> [Int64] {
        var ids: [Int64] = []
        for try await id in rows.decode(Int64.self) { ids.append(id) }
        return ids.sorted()
    }
}
