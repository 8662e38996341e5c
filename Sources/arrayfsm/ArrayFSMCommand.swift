import ArgumentParser

/// `arrayfsm`: Jobmon's array bookkeeping as a message-driven batch processor.
@main
struct ArrayFSMCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "arrayfsm",
        abstract: "Applies job-array commands to task instances in PostgreSQL with set-based transitions.",
        discussion: """
            Every flag has an ARRAYFSM_* environment twin (--database-url ↔ ARRAYFSM_DATABASE_URL); flags win.
            """,
        subcommands: [MigrateCommand.self, ServeCommand.self, DevBrokerCommand.self, LocalPostgresCommand.self, BenchSQLCommand.self, BenchServeCommand.self, DumpCommand.self, ReplayCommand.self]
    )
}
