// arrayfsm — the command line: argument parsing and wiring of the modules; no logic of its own.
import ArgumentParser

/// `--bootstrap-servers` and `--kafka`: the broker a tool reads from or writes to, and the
/// librdkafka properties it is reached with.
struct BrokerOptions: ParsableArguments {
    @Option(help: "host:port (env ARRAYFSM_BOOTSTRAP_SERVERS)") var bootstrapServers: String?
    @Option(name: .customLong("kafka"), help: "librdkafka property name=value (repeatable)") var kafkaProperties: [String] = []

    /// The flag or its environment twin; a usage error when neither is given.
    func bootstrap() throws -> String {
        guard let bootstrap = Environment.value(bootstrapServers, "ARRAYFSM_BOOTSTRAP_SERVERS") else {
            throw ValidationError("no broker: pass --bootstrap-servers host:port or set ARRAYFSM_BOOTSTRAP_SERVERS")
        }
        return bootstrap
    }

    /// `--kafka name=value` flags and `ARRAYFSM_KAFKA_NAME` variables.
    func properties() throws -> [String: String] { try Environment.kafkaProperties(kafkaProperties) }
}
