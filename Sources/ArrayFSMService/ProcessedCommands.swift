// ArrayFSMService — the processor: command batches from Kafka, one transaction each, the outbox
// and its relay, readiness and metrics. Uses ArrayFSM for the domain and Kafka for the wire.
import ArrayFSM
import Foundation
import Logging
import NIOCore
import PostgresNIO

/// The processed-commands table: which command ids were applied, and the answer each got.
enum ProcessedCommands {
    /// Inserts a placeholder row per id; returns the ids this transaction claimed (the others
    /// were processed before, or by a concurrent transaction that has now committed).
    static func claim(_ ids: [String], on connection: PostgresConnection, logger: Logger) async throws -> Set<String> {
        guard !ids.isEmpty else { return [] }
        let rows = try await connection.query(
            """
            INSERT INTO arrayfsm_processed_command (command_id, type, status, result_events)
            SELECT id, '', 'pending', '{}' FROM unnest(\(ids)::text[]) AS id
            ON CONFLICT (command_id) DO NOTHING
            RETURNING command_id
            """, logger: logger)
        var claimed = Set<String>()
        for try await id in rows.decode(String.self) { claimed.insert(id) }
        return claimed
    }

    /// The stored answers of earlier processed commands.
    static func results(
        _ ids: [String], on connection: PostgresConnection, logger: Logger
    ) async throws -> [String: CommandBatchProcessor.StoredResult] {
        guard !ids.isEmpty else { return [:] }
        let rows = try await connection.query(
            """
            SELECT command_id, result_events, coalesce(reply_to, ''), result_key IS NOT NULL, coalesce(result_key, ''),
                   coalesce(digest, ''), type, processed_at
            FROM arrayfsm_processed_command
            WHERE command_id = ANY(\(ids)::text[])
            """, logger: logger)
        var results: [String: CommandBatchProcessor.StoredResult] = [:]
        for try await (id, events, replyTo, hasKey, key, digest, type, processedAt)
            in rows.decode((String, [ByteBuffer], String, Bool, ByteBuffer, ByteBuffer, String, Date).self)
        {
            results[id] = .init(
                events: events.map { Array($0.readableBytesView) }, replyTo: replyTo.isEmpty ? nil : replyTo,
                key: hasKey ? Array(key.readableBytesView) : nil,
                digest: digest.readableBytes == 0 ? nil : CommandDigest(bytes: Array(digest.readableBytesView)),
                type: type, processedAt: processedAt)
        }
        return results
    }

    /// One processed command's answer.
    struct Answer {
        var id: String
        var type: String
        var status: String
        var events: [[UInt8]]
        var replyTo: String?
        var key: [UInt8]?
        var digest: CommandDigest?
    }

    /// Fills in the claimed rows with their answers (one statement for the batch).
    static func record(_ answers: [Answer], on connection: PostgresConnection, logger: Logger) async throws {
        guard !answers.isEmpty else { return }
        // unnest takes one-dimensional arrays, so every row's parts travel in one flat array and each
        // row takes its slice (1-based, inclusive). Not one joined bytea split again in SQL: that is
        // a regular expression over megabytes per batch.
        var parts: [ByteBuffer] = []
        var first: [Int32] = []
        var last: [Int32] = []
        for answer in answers {
            first.append(Int32(parts.count + 1))
            parts += answer.events.map { ByteBuffer(bytes: $0) }
            last.append(Int32(parts.count))
        }
        try await connection.query(
            """
            UPDATE arrayfsm_processed_command AS p
            SET type = r.type, status = r.status, reply_to = nullif(r.reply_to, ''),
                result_key = CASE WHEN r.has_key THEN r.result_key END,
                result_events = (\(parts)::bytea[])[r.first:r.last], digest = nullif(r.digest, '')
            FROM unnest(\(answers.map(\.id))::text[], \(answers.map(\.type))::text[], \(answers.map(\.status))::text[],
                        \(first)::int[], \(last)::int[], \(answers.map { $0.replyTo ?? "" })::text[],
                        \(answers.map { $0.key != nil })::bool[], \(answers.map { ByteBuffer(bytes: $0.key ?? []) })::bytea[],
                        \(answers.map { ByteBuffer(bytes: $0.digest?.bytes ?? []) })::bytea[])
                 AS r(command_id, type, status, first, last, reply_to, has_key, result_key, digest)
            WHERE p.command_id = r.command_id
            """, logger: logger)
    }
}
