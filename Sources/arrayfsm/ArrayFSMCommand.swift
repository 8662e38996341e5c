// arrayfsm — the command line: argument parsing and wiring of the modules; no logic of its own.
import ArgumentParser
import ArrayFSM
import ArrayFSMService
import Foundation
import PostgresNIO

/// `arrayfsm`: Jobmon's array bookkeeping as a message-driven batch processor.
@main
struct ArrayFSMCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "arrayfsm",
        abstract: "Applies job-array commands to task instances in PostgreSQL with set-based transitions.",
        discussion: """
            Every flag has an ARRAYFSM_* environment twin (--database-url ↔ ARRAYFSM_DATABASE_URL); flags win.
            """,
        subcommands: [MigrateCommand.self, ServeCommand.self, OutboxCommand.self, DevBrokerCommand.self, LocalPostgresCommand.self, BenchSQLCommand.self, BenchScaleCommand.self, BenchServeCommand.self, BenchCommand.self, GenCommand.self, SeedCommand.self, DumpCommand.self, ReplayCommand.self, ChaosCommand.self]
    )

    /// Runs the command; PostgreSQL that cannot be reached is reported in one line (where, why;
    /// never the password), and a database error is printed with the server's message (PostgresNIO's own
    /// description hides it), in one line, with a non-zero exit.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as DatabaseURL.ParseError {
            FileHandle.standardError.write(Data("arrayfsm: \(error)\n".utf8))
            Foundation.exit(64)
        } catch let error as ServeConfiguration.Invalid {
            FileHandle.standardError.write(Data("arrayfsm: \(error)\n".utf8))
            Foundation.exit(64)
        } catch let error as DatabaseConnectError {
            FileHandle.standardError.write(Data("arrayfsm: \(error)\n".utf8))
            Foundation.exit(1)
        } catch let error as PSQLError {
            let info = error.serverInfo
            let detail = info.map { "\($0[.sqlState] ?? "") \($0[.message] ?? "")" } ?? "\(error.code)"
            FileHandle.standardError.write(Data("arrayfsm: database error: \(detail)\n".utf8))
            Foundation.exit(1)
        } catch {
            exit(withError: error)
        }
    }
}
