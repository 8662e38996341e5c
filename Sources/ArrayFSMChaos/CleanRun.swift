// ArrayFSMChaos — the fault suite: serve processes under kills, restarts, broker and database
// faults and hostile input, checked by an oracle against a clean run. Built on ArrayFSMTools.
import ArrayFSM
import ArrayFSMLoad
import ArrayFSMService
import Logging
import PostgresNIO

/// The reference: the same messages applied in order by the same processor, one batch after
/// another, no Kafka and no faults. Its database is what the chaos run must end with, and its
/// outbox (never relayed) is what the chaos run must have published.
struct CleanRun {
    var records: [TopicDumpRecord]
    var spec: LoadSpec
    var topics: Topics

    func ledger(_ client: PostgresClient, logger: Logger) async throws -> EventLedger {
        try await Migrator().migrate(client, logger: logger)
        try await Seeder(spec: spec).seed(client, logger: logger)
        let processor = CommandBatchProcessor(database: ArrayDatabase(client: client), topics: topics)
        let messages = records.enumerated().map { offset, record in
            IncomingCommand(topic: topics.commands, partition: 0, offset: Int64(offset), key: record.key, value: record.payload,
                            headers: [], timestampMilliseconds: nil)
        }
        for start in stride(from: 0, to: messages.count, by: 50) {
            _ = try await processor.process(Array(messages[start..<min(start + 50, messages.count)]), logger: logger)
        }
        var ledger = EventLedger()
        let rows = try await client.query("SELECT id, topic, key, value FROM arrayfsm_outbox ORDER BY id", logger: logger)
        for try await (id, topic, key, value) in rows.decode((Int64, String, ByteBuffer?, ByteBuffer).self) {
            let bytes = Array(value.readableBytesView)
            let keyBytes = key.map { Array($0.readableBytesView) }
            switch topic {
            case topics.results:
                ledger.addResult(bytes)
                ledger.addInOrder(topic: topic, key: keyBytes, bytes)
            case topics.transitions:
                ledger.addTransition(bytes)
                ledger.addInOrder(topic: topic, key: keyBytes, bytes)
            case topics.deadLetters: ledger.addDeadLetter(source: "clean-\(id)")
            default: break
            }
        }
        return ledger
    }
}
