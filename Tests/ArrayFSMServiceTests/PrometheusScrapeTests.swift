import ArrayFSM
import ArrayFSMService
import ArrayFSMTesting
import ArrayFSMTools
import Foundation
import Testing

/// `arrayfsm serve` as Prometheus sees it: Debian's `prometheus` and `promtool` (installed by
/// scripts/install-system-packages) against the serve binary, with deploy/prometheus's own
/// scrape config and alert rules and the Grafana dashboard's queries.
@Suite(.serialized) struct PrometheusScrapeTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// A program on PATH (or in /usr/bin), as posix_spawn needs its full path.
    static func installed(_ program: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        return (path.split(separator: ":").map(String.init) + ["/usr/bin"])
            .map { $0 + "/" + program }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    @Test func everyMetricHasHelpText() {
        for name in ServiceMetrics.names {
            #expect(!(ServiceMetrics.help[name] ?? "").isEmpty, "\(name) has no entry in ServiceMetrics.help (ServiceMetrics+Help.swift)")
        }
        #expect(Set(ServiceMetrics.help.keys).subtracting(ServiceMetrics.names).isEmpty, "help for names that are not in ServiceMetrics.names")
        for (name, text) in ServiceMetrics.help {
            #expect(!text.contains("\n") && !text.contains("\\"), "\(name): one line, no escapes")
        }
    }

    @Test func promtoolAcceptsTheExpositionAndPrometheusScrapesEveryMetricTheDashboardAndTheAlertsUse() async throws {
        let binary = ServeProcessTests.binary
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build arrayfsm first (swift build --build-tests)")
        let prometheus = try #require(Self.installed("prometheus"), "no prometheus: run scripts/install-system-packages")
        let promtool = try #require(Self.installed("promtool"), "no promtool: run scripts/install-system-packages")
        try await TestPostgres.withDatabase { db, url in
            let harness = try ServiceHarness(database: db)
            let array = try await ArrayFixture.make(db, tasks: 4)
            let metricsPort = try ThrowawayPostgres.freePort()
            let serve = try harness.startServerProcess(binary: binary, databaseURL: url, extraEnvironment: ["ARRAYFSM_METRICS_PORT": String(metricsPort)])
            defer { serve.signal(SIGKILL); _ = serve.wait() }
            try await harness.produce([
                (CommandMessage.key(arrayID: array.arrayID), CommandMessage.json("record_array_batch_num", id: "p1", payload: [
                    "array_id": array.arrayID, "task_ids": array.taskIDs, "task_resources_id": 1, "workflow_run_id": 1])),
            ])
            _ = try await harness.read(harness.topics.results) { $0.contains { $0.json["command_id"] as? String == "p1" } }

            // The exposition passes promtool's lint (HELP and TYPE for every family, naming rules).
            let exposition = try await HTTPGet.text(port: metricsPort, path: "/metrics")
            let expositionFile = FileManager.default.temporaryDirectory.appendingPathComponent("arrayfsm-metrics-\(UUID().uuidString).txt").path
            try exposition.write(toFile: expositionFile, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: expositionFile) }
            let check = try ChildProcess(["/bin/sh", "-c", #"exec "$0" check metrics < "$1""#, promtool, expositionFile])
            #expect(await check.wait(timeout: .seconds(30)) == 0, "promtool check metrics:\n\(check.output)\non:\n\(exposition)")
            for name in ServiceMetrics.names {
                #expect(exposition.contains("# HELP \(name) \(ServiceMetrics.help[name] ?? "?")\n"), "no HELP line for \(name)")
            }

            // Prometheus with deploy/prometheus/prometheus.yml, its target and paths replaced.
            let prometheusPort = try ThrowawayPostgres.freePort()
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("arrayfsm-prometheus-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let config = try Self.scrapeConfig(serve: "127.0.0.1:\(metricsPort)", prometheus: "127.0.0.1:\(prometheusPort)")
            try config.write(to: directory.appendingPathComponent("prometheus.yml"), atomically: true, encoding: .utf8)
            let server = try ChildProcess([
                prometheus, "--config.file=\(directory.path)/prometheus.yml", "--storage.tsdb.path=\(directory.path)/data",
                "--web.listen-address=127.0.0.1:\(prometheusPort)",
            ])
            defer { server.signal(SIGKILL); _ = server.wait() }
            let api = PrometheusAPI(port: prometheusPort)
            try await api.waitFor("serve scraped (up == 1)", timeout: .seconds(60), log: server) {
                try await api.query(#"up{job="arrayfsm"} == 1"#).count == 1
            }

            // A dead letter after the first scrape: the counter rises from the 0 Prometheus saw,
            // which is what increase() in ArrayFSMDeadLetters needs.
            try await harness.produce([
                (CommandMessage.key(arrayID: array.arrayID), Array("not a command".utf8)),
                (CommandMessage.key(arrayID: array.arrayID), CommandMessage.json("record_array_batch_num", id: "p2", payload: [
                    "array_id": array.arrayID, "task_ids": array.taskIDs, "task_resources_id": 1, "workflow_run_id": 1])),
            ])
            _ = try await harness.read(harness.topics.results) { $0.contains { $0.json["command_id"] as? String == "p2" } }

            // The names every query uses: the rules as Prometheus loaded them from alerts.yaml, and
            // the dashboard's expressions (histograms by the _bucket/_sum/_count series they name).
            let rules = try await api.rules()
            let alertCount = try String(contentsOf: Self.root.appendingPathComponent("deploy/prometheus/alerts.yaml"), encoding: .utf8)
                .split(separator: "\n").filter { $0.trimmingCharacters(in: .whitespaces).hasPrefix("- alert:") }.count
            #expect(rules.count == alertCount, "Prometheus loaded \(rules.count) rules of \(alertCount)")
            let dashboard = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.root.appendingPathComponent("deploy/grafana/arrayfsm.json")))
            let expressions = rules.map(\.query) + Self.expressions(in: dashboard)
            let metricName = try Regex("arrayfsm_[a-z_]+")
            var found = Set(expressions.flatMap { text in text.matches(of: metricName).map { String(text[$0.range]) } })
            for name in found where name.hasSuffix("_bucket") { found.insert(String(name.dropLast("_bucket".count)) + "_count") }
            let used = found.sorted()
            #expect(used.count >= ServiceMetrics.names.count, "names found: \(used)")

            try await api.waitFor("every used metric has data and ArrayFSMDeadLetters fires", timeout: .seconds(60), log: server) {
                for name in used {
                    if try await api.query(name).isEmpty { return false }
                }
                return try await api.firingAlerts().contains("ArrayFSMDeadLetters")
            }
            for name in used {
                #expect(try await !api.query(name).isEmpty, "\(name) was not scraped")
            }
            for rule in try await api.rules() {
                #expect(rule.health == "ok", "\(rule.name): \(rule.health) \(rule.lastError)")
            }
            // Nothing else is wrong with this serve: only the dead letter alerts.
            #expect(try await api.firingAlerts() == ["ArrayFSMDeadLetters"])

            serve.signal(SIGTERM)
            #expect(await serve.wait(timeout: .seconds(60)) == 0)
            server.signal(SIGTERM)
            #expect(await server.wait(timeout: .seconds(30)) == 0, "prometheus:\n\(server.output)")
            try await harness.shutdown()
        }
    }

    /// deploy/prometheus/prometheus.yml with the arrayfsm job pointed at `serve` (a static target
    /// instead of compose's DNS discovery), Prometheus's own job at `prometheus`, the rules read
    /// from deploy/, and scrapes and rule evaluations every second.
    static func scrapeConfig(serve: String, prometheus: String) throws -> String {
        let original = try String(contentsOf: root.appendingPathComponent("deploy/prometheus/prometheus.yml"), encoding: .utf8)
        var lines: [String] = []
        var dropping = false
        for line in original.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            let indent = line.prefix { $0 == " " }.count
            if dropping && indent > 4 { continue }
            dropping = false
            if line == "    dns_sd_configs:" {
                lines += ["    static_configs:", "      - targets: [\"\(serve)\"]"]
                dropping = true
                continue
            }
            lines.append(line)
        }
        var config = lines.joined(separator: "\n")
        let substitutions = [
            ("- /etc/prometheus/alerts.yaml", "- \(root.path)/deploy/prometheus/alerts.yaml"),
            (#"targets: ["localhost:9090"]"#, "targets: [\"\(prometheus)\"]"),
            ("scrape_interval: 15s", "scrape_interval: 1s"),
            ("evaluation_interval: 15s", "evaluation_interval: 1s"),
        ]
        for (old, new) in substitutions {
            try #require(config.contains(old), "deploy/prometheus/prometheus.yml no longer has \(old)")
            config = config.replacingOccurrences(of: old, with: new)
        }
        try #require(config.contains(serve) && !config.contains("dns_sd_configs"), "the arrayfsm job's dns_sd_configs was not replaced:\n\(config)")
        return config
    }

    /// Every PromQL string of a Grafana dashboard: panel targets' `expr`, template variables' `query`/`definition`.
    static func expressions(in node: Any) -> [String] {
        if let object = node as? [String: Any] {
            return object.flatMap { key, value -> [String] in
                if ["expr", "query", "definition"].contains(key), let text = value as? String { return [text] }
                return expressions(in: value)
            }
        }
        if let array = node as? [Any] { return array.flatMap(expressions(in:)) }
        return []
    }
}

/// Prometheus's HTTP API (v1), over HTTPGet.
struct PrometheusAPI {
    let port: Int

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    struct Rule {
        var name: String
        var query: String
        var health: String
        var lastError: String
    }

    func get(_ path: String) async throws -> [String: Any] {
        let text = try await HTTPGet.text(port: port, path: path)
        let body = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
        guard let body, body["status"] as? String == "success", let data = body["data"] as? [String: Any] else {
            throw Failure(description: "GET \(path): \(text)")
        }
        return data
    }

    /// The result vector of an instant query.
    func query(_ promQL: String) async throws -> [[String: Any]] {
        let encoded = promQL.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? promQL
        return try await get("/api/v1/query?query=\(encoded)")["result"] as? [[String: Any]] ?? []
    }

    func rules() async throws -> [Rule] {
        let groups = try await get("/api/v1/rules")["groups"] as? [[String: Any]] ?? []
        return groups.flatMap { ($0["rules"] as? [[String: Any]]) ?? [] }.map {
            Rule(name: $0["name"] as? String ?? "", query: $0["query"] as? String ?? "",
                 health: $0["health"] as? String ?? "", lastError: $0["lastError"] as? String ?? "")
        }
    }

    /// Names of the alerts in state firing.
    func firingAlerts() async throws -> Set<String> {
        let alerts = try await get("/api/v1/alerts")["alerts"] as? [[String: Any]] ?? []
        return Set(alerts.filter { $0["state"] as? String == "firing" }
            .compactMap { ($0["labels"] as? [String: Any])?["alertname"] as? String })
    }

    /// Polls `condition` (API errors count as false: Prometheus may still be starting) until it holds.
    func waitFor(_ what: String, timeout: Duration, log: ChildProcess, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if (try? await condition()) == true { return }
            try await Task.sleep(for: .milliseconds(500))
        }
        Issue.record("timed out waiting for \(what); prometheus:\n\(log.output.suffix(4000))")
    }
}
