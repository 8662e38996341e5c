// ArrayFSMChaos — the fault suite: serve processes under kills, restarts, broker and database
// faults and hostile input, checked by an oracle against a clean run. Built on ArrayFSMTools.
import ArrayFSMLoad
import ArrayFSMTools
import Foundation
import Logging
import PostgresNIO

/// Injects one scenario's faults, `size.faults` of them, `size.faultInterval` seconds apart.
struct FaultInjector: Sendable {
    var scenario: ChaosScenario
    var size: ChaosSize
    var fleet: ServeFleet
    var postgres: ThrowawayPostgres
    /// The broker process of the `broker-restart` scenario.
    var broker: NoidaBroker?
    var client: PostgresClient
    var arrays: [LoadSpec.PlannedArray]
    /// The `hostile` scenario's bursts, one per fault.
    var bursts: [HostileInput.Burst] = []
    var logger: Logger

    /// The fleet's harness: its broker (the mock cluster's controls) and its producer.
    var harness: ServiceHarness { fleet.harness }

    func inject() async throws -> [ProgressMonitor.Fault] {
        var faults: [ProgressMonitor.Fault] = []
        // Bad input is its own fault: the messages are in the workload; a kill halfway adds a restart.
        let count = scenario == .badInput ? 1 : scenario == .hostile ? bursts.count : size.faults
        for index in 0..<count {
            try await Task.sleep(for: .seconds(size.faultInterval * Double.random(in: 0.5...1.5)))
            let started = ContinuousClock.now
            try await injectOne(index)
            faults.append(.init(started: started, ended: .now))
        }
        return faults
    }

    func injectOne(_ index: Int) async throws {
        switch scenario {
        case .kills, .badInput:
            await fleet.killOne()
            try fleet.add()
        case .rebalance:
            // 1 → 2 → 3 → 2 → 1 → 2 …: joins and graceful leaves, one member at a time.
            let phase = index % 4
            if phase < 2 { try fleet.add() } else { await fleet.removeOne() }
        case .postgres:
            if index % 2 == 0 {
                try postgres.restart()
            } else {
                try await client.query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = \(ServiceRole.name)", logger: logger)
            }
        case .broker:
            try harness.cluster?.setBrokerDown(1)
            try await Task.sleep(for: .seconds(2))
            try harness.cluster?.setBrokerUp(1)
        case .brokerRestart:
            // The Kafka service, from its data directory. ARRAYFSM_CHAOS_BROKER_RESTART=process restarts
            // the whole noida-db process instead, which loses acknowledged messages (a broker flaw the
            // oracle then reports as lost commands or missing events; docs/reliability.md).
            guard let broker else { preconditionFailure("broker-restart runs on a NoidaBroker") }
            if ProcessInfo.processInfo.environment["ARRAYFSM_CHAOS_BROKER_RESTART"] == "process" {
                try await broker.restartProcess(downFor: .seconds(2))
            } else {
                try await broker.restartService(downFor: .seconds(2))
            }
        case .locks:
            if index % 2 == 0 { try await holdArrayLocks() } else { try await crossLocks() }
        case .hostile:
            try await send(bursts[index])
        }
    }

    /// Produces a burst once the commands it must follow are applied.
    func send(_ burst: HostileInput.Burst) async throws {
        let deadline = ContinuousClock.now + .seconds(120)
        while !burst.after.isEmpty {
            let applied = try await client.query(
                "SELECT count(*) FROM arrayfsm_processed_command WHERE command_id = ANY(\(burst.after))", logger: logger
            ).decode(Int64.self).reduce(0, +)
            if applied == burst.after.count { break }
            guard ContinuousClock.now < deadline else {
                throw ChaosRun.Stuck(description: "\(burst.kind.rawValue): the commands it follows were not applied within 120 s")
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        var unkeyed = 0
        let report = try await harness.producer.send(ChaosRun.messages(burst.records, topic: harness.topics.commands, unkeyed: &unkeyed))
        if !report.isComplete { throw report.failures[0] }
    }

    /// Holds half the arrays' rows for a second: the service's lock waits run into its role's
    /// lock_timeout (55P03) and are retried.
    func holdArrayLocks() async throws {
        let ids = arrays.prefix(max(1, arrays.count / 2)).map(\.arrayID)
        try await client.withConnection { connection in
            try await connection.query("BEGIN", logger: logger)
            try await connection.query(#"SELECT id FROM "array" WHERE id = ANY(\#(ids)) FOR UPDATE"#, logger: logger)
            try await Task.sleep(for: .seconds(1))
            try await connection.query("COMMIT", logger: logger)
        }
    }

    /// Takes an array's task rows and then its array row: the opposite order to the service's
    /// operations (array row first), so a command on that array in between deadlocks (40P01).
    /// Either side may be the victim; the injector's rollback changes nothing.
    func crossLocks() async throws {
        for array in arrays.shuffled().prefix(3) {
            try await client.withConnection { connection in
                do {
                    try await connection.query("BEGIN", logger: logger)
                    try await connection.query("SELECT id FROM task WHERE array_id = \(array.arrayID) FOR UPDATE", logger: logger)
                    try await Task.sleep(for: .milliseconds(300))
                    try await connection.query(#"SELECT id FROM "array" WHERE id = \#(array.arrayID) FOR UPDATE"#, logger: logger)
                    try await connection.query("ROLLBACK", logger: logger)
                } catch {
                    _ = try? await connection.query("ROLLBACK", logger: logger)
                }
            }
        }
    }
}
