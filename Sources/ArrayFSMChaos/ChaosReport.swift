/// What one scenario did and what the oracle found.
public struct ChaosReport: Sendable, Codable {
    public var scenario: ChaosScenario
    /// Messages replayed (good commands, bad input and repeats).
    public var commands: Int
    public var faultsInjected: Int
    /// Good commands with no result event.
    public var commandsLost: Int
    /// Rows whose state shows a command applied more than once (extra task instances, extra attempts).
    public var appliedTwice: Int
    /// Transition groups the clean run published and this run did not (or with other counts).
    public var eventsMissing: Int
    /// Seconds from each fault until commands were applied again: p50 and max.
    public var recoveryP50: Double?
    public var recoveryMax: Double?
    public var seconds: Double
    /// `serve` processes that ended on their own and were restarted, with why (not a broken
    /// promise by itself: a supervisor restarts them, and the oracle checks the outcome).
    public var serveExits: [String] = []
    /// Everything the oracle found wrong; empty when the run kept every promise.
    public var violations: [String]
    /// The `hostile` scenario: per kind of input, what happened to it.
    public var inputs: [InputOutcome] = []

    /// One kind of hostile input: how many were sent, what they got, how long until commands were
    /// applied again after their burst (the longest over its bursts).
    public struct InputOutcome: Sendable, Codable {
        public var input: String
        public var count: Int
        /// Outcome → messages that got it.
        public var outcomes: [String: Int]
        public var recoverySeconds: Double?

        /// One table row: input, count, outcomes, time to recover.
        public var row: String {
            let got = outcomes.sorted { $0.key < $1.key }.map { outcomes.count == 1 ? $0.key : "\($0.key) ×\($0.value)" }
            return "| \(input) | \(count) | \(got.joined(separator: "; ")) | \(recoverySeconds.map { String(format: "%.1f s", $0) } ?? "—") |"
        }

        public static let header = """
            | input | count | outcome | time to recover |
            |---|---|---|---|
            """
    }

    public var passed: Bool { violations.isEmpty }

    /// One table row: scenario, commands, faults, lost, twice, missing, recovery p50/max.
    public var row: String {
        func seconds(_ value: Double?) -> String { value.map { String(format: "%.1f s", $0) } ?? "—" }
        return "| \(scenario.rawValue) | \(commands) | \(faultsInjected) | \(commandsLost) | \(appliedTwice) | \(eventsMissing) | "
            + "\(seconds(recoveryP50)) / \(seconds(recoveryMax)) | \(passed ? "pass" : "FAIL") |"
    }

    public static let header = """
        | scenario | commands | faults | lost | applied twice | events missing | recovery p50 / max | oracle |
        |---|---|---|---|---|---|---|---|
        """
}
