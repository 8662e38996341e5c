import ArrayFSMChaos
import ArrayFSMTesting
import ArrayFSMTools
import Foundation
import Testing

/// The fault-injection suite at CI size: each scenario replays a generated workload through
/// `serve` child processes (as the least-privilege role) while faults are injected, and the
/// oracle compares everything with a clean run of the same messages.
@Suite(.serialized) struct ChaosTests {
    /// `arrayfsm`, built next to the test binary by `swift build --build-tests`.
    static let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("arrayfsm").path

    @Test(arguments: ChaosScenario.allCases)
    func nothingLostNothingAppliedTwice(_ scenario: ChaosScenario) async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build arrayfsm first (swift build --build-tests)")
        let report = try await ChaosRun(scenario: scenario, size: .small, binary: Self.binary).run(logger: TestPostgres.logger)
        print(ChaosReport.header + "\n" + report.row)
        if !report.inputs.isEmpty { print(([ChaosReport.InputOutcome.header] + report.inputs.map(\.row)).joined(separator: "\n")) }
        #expect(report.inputs.count == scenario.inputKinds)
        #expect(report.faultsInjected >= 1)
        #expect(report.commandsLost == 0)
        #expect(report.appliedTwice == 0)
        #expect(report.eventsMissing == 0)
        #expect(report.violations.isEmpty, "\(report.violations.prefix(10).joined(separator: "\n"))")
    }

    /// The oracle is not vacuous: a run missing its last commands, with one task's attempts bumped
    /// behind the service's back, is reported lost and applied twice.
    @Test func theOracleNoticesLostAndDoubleAppliedCommands() async throws {
        var run = ChaosRun(scenario: .rebalance, size: .small, binary: Self.binary)
        run.size.faults = 1
        run.sabotage = .init(dropMessages: 3, bumpAttempts: 1)
        let report = try await run.run(logger: TestPostgres.logger)
        #expect(report.commandsLost == 3)
        #expect(report.appliedTwice == 1)
        #expect(!report.passed)
    }
}
