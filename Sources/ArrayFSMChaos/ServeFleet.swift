// ArrayFSMChaos — the fault suite: serve processes under kills, restarts, broker and database
// faults and hostile input, checked by an oracle against a clean run. Built on ArrayFSMTools.
import ArrayFSM
import ArrayFSMTools
import Foundation
import Synchronization

/// The `serve` child processes of one scenario, all in one consumer group.
final class ServeFleet: Sendable {
    let harness: ServiceHarness
    let binary: String
    let databaseURL: DatabaseURL
    /// Settings of every member, over the fleet's own (e.g. a short outbox park time).
    let environment: [String: String]
    private let members = Mutex<[ChildProcess]>([])
    /// Member pid → the port of its metrics endpoint.
    private let metricsPorts = Mutex<[pid_t: Int]>([:])

    init(harness: ServiceHarness, binary: String, databaseURL: DatabaseURL, environment: [String: String] = [:]) {
        self.harness = harness
        self.binary = binary
        self.databaseURL = databaseURL
        self.environment = environment
    }

    private let exits = Mutex<[String]>([])

    var count: Int { members.withLock { $0.count } }

    /// Members that ended on their own (not killed or stopped by the scenario), with the end of their output.
    var unexpectedExits: [String] { exits.withLock { $0 } }

    /// The last lines each running member wrote (for reports when a run does not finish).
    func outputTails(lines: Int = Int(ProcessInfo.processInfo.environment["ARRAYFSM_CHAOS_TAIL_LINES"] ?? "") ?? 8) -> [String] {
        members.withLock { list in
            list.map { member in "serve \(member.pid): " + member.output.split(separator: "\n").suffix(lines).joined(separator: "\n    ") }
        }
    }

    /// Restarts members that ended on their own, as a supervisor (systemd, Kubernetes) would.
    func supervise() throws {
        let ended = members.withLock { list -> [(ChildProcess, Int32)] in
            var ended: [(ChildProcess, Int32)] = []
            list.removeAll { member in
                guard let code = member.exitCodeIfEnded() else { return false }
                ended.append((member, code))
                return true
            }
            return ended
        }
        for (member, code) in ended {
            let tail = member.output.split(separator: "\n").suffix(3).joined(separator: " | ")
            exits.withLock { $0.append("serve exited with \(code): \(tail)") }
            try add()
        }
    }

    /// Starts one more member.
    func add() throws {
        // ARRAYFSM_CHAOS_SERVE_LOG_LEVEL=info (or debug) to see what the members did.
        let level = ProcessInfo.processInfo.environment["ARRAYFSM_CHAOS_SERVE_LOG_LEVEL"] ?? "warning"
        // The driver's ARRAYFSM_KAFKA_* (e.g. ARRAYFSM_KAFKA_DEBUG=cgrp,fetch) reach the members too.
        var environment = ProcessInfo.processInfo.environment.filter { $0.key.hasPrefix("ARRAYFSM_KAFKA_") }
        environment["ARRAYFSM_LOG_LEVEL"] = level
        environment["ARRAYFSM_BATCH_TIMEOUT_SECONDS"] = "15"
        let port = try ThrowawayPostgres.freePort()
        environment["ARRAYFSM_METRICS_PORT"] = String(port)
        environment.merge(self.environment) { $1 }
        let child = try harness.startServerProcess(binary: binary, databaseURL: databaseURL, extraEnvironment: environment)
        members.withLock { $0.append(child) }
        metricsPorts.withLock { $0[child.pid] = port }
    }

    /// Each running member's `/metrics` exposition (members that do not answer are left out).
    func scrapeMetrics() async -> [String] {
        let ports = members.withLock { list in list.compactMap { member in metricsPorts.withLock { $0[member.pid] } } }
        var expositions: [String] = []
        for port in ports {
            if let response = try? await HTTPGet.response(port: port, path: "/metrics"), response.hasPrefix("200\n") {
                expositions.append(String(response.dropFirst(4)))
            }
        }
        return expositions
    }

    /// Kills a random member with SIGKILL (no goodbye: its partitions move only after its session times out).
    func killOne() async {
        guard let victim = members.withLock({ list in list.isEmpty ? nil : list.remove(at: Int.random(in: 0..<list.count)) }) else { return }
        victim.signal(SIGKILL)
        _ = await victim.wait(timeout: .seconds(10))
    }

    /// Kills every member (SIGKILL) and waits for them: for a driver that gives up.
    func killAll() async {
        for member in members.withLock({ list in defer { list = [] }; return list }) {
            member.signal(SIGKILL)
            _ = await member.wait(timeout: .seconds(10))
        }
    }

    /// Stops the newest member as an orchestrator would (SIGTERM, graceful; SIGKILL after 60 s, as
    /// a supervisor's stop timeout does). A member that needed the SIGKILL is listed in
    /// ``stuckOnStop``; one that exited with a failure status is listed with the unexpected exits.
    func removeOne() async {
        guard let member = members.withLock({ $0.popLast() }) else { return }
        member.signal(SIGTERM)
        let tail = { member.output.split(separator: "\n").suffix(3).joined(separator: " | ") }
        switch await member.wait(timeout: .seconds(60)) {
        case 0?:
            break
        case let code?:
            exits.withLock { $0.append("serve stopped (SIGTERM) with \(code): \(tail())") }
        case nil:
            stuck.withLock { $0.append("serve \(member.pid) did not stop within 60 s of SIGTERM: \(tail())") }
            member.signal(SIGKILL)
            _ = await member.wait(timeout: .seconds(10))
        }
    }

    private let stuck = Mutex<[String]>([])

    /// Members that did not finish a graceful stop within 60 s, with the end of their output.
    var stuckOnStop: [String] { stuck.withLock { $0 } }

    /// Stops every member gracefully, one at a time, as a rolling stop does.
    ///
    /// Without waiting for the group to settle, the next member is stopped while the group rebalances after the previous
    /// one left, and its final commit is refused (`REBALANCE_IN_PROGRESS`; librdkafka's mock cluster
    /// refuses every commit during a rebalance): nothing is lost — its last commands are re-read by
    /// the next owner and answered as duplicates — but the group's offsets end short of the topic.
    func stopAll() async {
        while count > 0 {
            // Let the group settle first: the members own every partition and committed to the end
            // (or 20 s pass), so the member leaving now takes no uncommitted work with it.
            await waitForCommitsAtEnd(timeout: .seconds(20))
            await removeOne()
        }
    }

    /// Waits until the group's committed offsets reach the end of every commands partition.
    func waitForCommitsAtEnd(timeout: Duration) async {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let ends = try? await TopicReader(harness: harness).endOffsets(harness.topics.commands),
               let committed = try? await harness.committedOffsets(partitions: Int32(ends.count)),
               ends.allSatisfy({ $0.value == 0 || committed[$0.key] == $0.value }) {
                return
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
    }
}
