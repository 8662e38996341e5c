// ArrayFSM — the domain: statuses, FSM rules, the array operations and their SQL, migrations.
// Touches PostgreSQL only; knows nothing of Kafka or of the service around it.
import Logging
import PostgresNIO

/// One of arrayfsm's array operations: validated input, and the set-based SQL that applies it.
///
/// `apply` runs inside a transaction that the caller owns (``ArrayDatabase/perform(_:logger:)``
/// opens one per operation; the Kafka service puts a batch of commands in one), and it always
/// starts by locking the array row, so every operation takes its locks in one order:
/// the array row, then its tasks, then its task instances.
public protocol ArrayOperation: Sendable {
    associatedtype Output: Sendable

    /// Checks the input without touching the database.
    func validate() throws(OperationError)

    /// Applies the operation on a connection that is inside an open transaction.
    ///
    /// Throws ``OperationError`` when the database state refuses the operation (the caller must roll back),
    /// or the database's error.
    func apply(on connection: PostgresConnection, logger: Logger) async throws -> Output
}

/// One batch of one array: what a batch operation acts on.
public struct ArrayBatch: Sendable, Hashable {
    public var arrayID: Int64
    public var batchNumber: Int32

    public init(arrayID: Int64, batchNumber: Int32) {
        self.arrayID = arrayID
        self.batchNumber = batchNumber
    }
}

/// An operation on one batch of one array; its input check is shared.
public protocol BatchOperation: ArrayOperation {
    var batch: ArrayBatch { get }
}

extension BatchOperation {
    public var arrayID: Int64 { batch.arrayID }
    public var batchNumber: Int32 { batch.batchNumber }

    public func validate() throws(OperationError) {
        try Check.id(arrayID, "array_id")
        try Check.batchNumber(batchNumber)
    }
}

/// The lock every operation that changes an array's tasks takes first.
///
/// Tasks and task instances of one array are changed only while holding this row lock, which
/// serializes operations per array (as the Kafka partitioning does) and rules out deadlocks between them.
enum ArrayRowLock {
    /// Locks the array row and returns the last batch number issued for it.
    static func acquire(_ arrayID: Int64, on connection: PostgresConnection, logger: Logger) async throws -> Int32 {
        guard let lastBatch = try await acquire([arrayID], on: connection, logger: logger)[arrayID] else {
            throw OperationError.arrayNotFound(arrayID)
        }
        return lastBatch
    }

    /// Locks many array rows, ascending (as every operation locks); returns the last batch number
    /// issued for each array that exists.
    static func acquire(_ arrayIDs: [Int64], on connection: PostgresConnection, logger: Logger) async throws -> [Int64: Int32] {
        var lastBatch: [Int64: Int32] = [:]
        let rows = try await connection.query(
            """
            SELECT id, last_batch_num FROM "array" WHERE id = ANY(\(arrayIDs)) ORDER BY id FOR NO KEY UPDATE
            """, logger: logger)
        for try await (id, last) in rows.decode((Int64, Int32).self) { lastBatch[id] = last }
        return lastBatch
    }

    /// Locks the array row and checks that `batchNumber` was issued for it.
    static func acquire(
        _ arrayID: Int64, batch batchNumber: Int32, on connection: PostgresConnection, logger: Logger
    ) async throws {
        let lastBatch = try await acquire(arrayID, on: connection, logger: logger)
        guard batchNumber <= lastBatch else {
            throw OperationError.batchNotFound(arrayID: arrayID, batchNumber: batchNumber, lastIssued: lastBatch)
        }
    }
}
