// arrayfsm (CLI): `arrayfsm serve` — parse the settings into a ServeConfiguration, run the server it builds.
import ArgumentParser
import ArrayFSMService
import Foundation
import Logging
import Metrics
import Prometheus

/// `arrayfsm serve`: consume commands, apply them, publish results and transitions, until SIGTERM/SIGINT.
///
/// Its settings are ``ServeSetting/all``'s table: that table parses them and writes this
/// command's help, so a new setting is one row there.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the consumer and the outbox relay until SIGTERM/SIGINT.",
        discussion: "Settings: each flag, or else its environment variable; --name value or --name=value.\n\n" + ServeSetting.helpText
    )

    @Argument(parsing: .allUnrecognized, help: "Settings, as listed below.") var settings: [String] = []

    func run() async throws {
        let (flags, kafka) = try Self.flags(settings)
        let configuration = try ServeConfiguration(flags: flags, kafkaFlags: kafka, environment: ProcessInfo.processInfo.environment)
        var logger = Logger(label: "arrayfsm.serve") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = configuration.logLevel
        try await ArrayFSMServer.checkBeforeServing(configuration, logger: logger)
        let server = try ArrayFSMServer(
            configuration: configuration, observability: Self.bootstrapMetrics(), gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await server.run()
    }

    /// `--name value` / `--name=value` pairs by name, and the `--kafka` values in order.
    static func flags(_ arguments: [String]) throws(ServeConfiguration.Invalid) -> (flags: [String: String], kafka: [String]) {
        let known = Set(ServeSetting.all.map(\.flag) + ["kafka"])
        var flags: [String: String] = [:]
        var kafka: [String] = []
        var rest = arguments[...]
        while let argument = rest.popFirst() {
            guard argument.hasPrefix("--") else {
                throw .init("unexpected argument '\(argument)'; `arrayfsm serve --help` lists the settings")
            }
            var name = String(argument.dropFirst(2))
            let value: String
            if let equals = name.firstIndex(of: "=") {
                value = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            } else if let next = rest.popFirst() {
                value = next
            } else {
                throw .init("--\(name) needs a value")
            }
            guard known.contains(name) else { throw .init("unknown setting '--\(name)'; `arrayfsm serve --help` lists them") }
            if name == "kafka" { kafka.append(value) } else { flags[name] = value }
        }
        return (flags, kafka)
    }

    /// Makes the Prometheus registry swift-metrics reports to, once per process.
    static func bootstrapMetrics() -> ArrayFSMServer.Observability {
        var factory = PrometheusMetricsFactory()
        factory.defaultDurationHistogramBuckets = [
            .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(20),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
        ]
        factory.defaultValueHistogramBuckets = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000]
        MetricsSystem.bootstrap(HelpTextMetricsFactory(factory, help: ServiceMetrics.help))
        let registry = factory.registry
        return .init(metrics: ServiceMetrics(), exposition: { registry.emitToBuffer() })
    }
}
