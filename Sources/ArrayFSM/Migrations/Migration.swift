/// One step of arrayfsm's schema, applied once and recorded in `arrayfsm_migration`.
///
/// The SQL is compiled into the binary (no resource files to lose when the binary is copied
/// into a container). A migration is a list of statements because the extended query
/// protocol runs one statement at a time; they run in one transaction.
public struct Migration: Sendable {
    public var version: Int32
    public var name: String
    public var statements: [String]

    public init(version: Int32, name: String, statements: [String]) {
        self.version = version
        self.name = name
        self.statements = statements
    }

    /// Every migration, in the order they apply. Append; never edit one that has shipped.
    public static let all: [Migration] = [.v1CoreSchema, .v2ServiceTables, .v3EventStorage, .v4CommandDigest, .v5OutboxParking,
                                          .v6ParkedOutboxTable]
}
