// arrayfsm — the command line: argument parsing and wiring of the modules; no logic of its own.
import ArgumentParser
import Foundation
import Kafka

/// `arrayfsm dev-broker`: librdkafka's mock cluster as a local Kafka-protocol broker.
struct DevBrokerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev-broker",
        abstract: "Run an embedded Kafka-protocol broker (librdkafka's mock cluster) until SIGINT/SIGTERM.",
        discussion: """
            Prints its bootstrap address as the first line of stdout and creates the arrayfsm topics.
            For development, tests and the demo only: its state is in memory and each partition keeps
            only about 5 MiB. Production runs Apache Kafka (see deploy/).
            """
    )

    @Option(help: "Brokers in the cluster.")
    var brokers = 1

    @Option(help: "Partitions of each arrayfsm topic.")
    var partitions: Int32 = 4

    @Option(help: "Topics to create (repeatable).")
    var topic: [String] = ["arrayfsm.commands", "arrayfsm.results", "arrayfsm.transitions", "arrayfsm.dlq"]

    func run() async throws {
        let signals = SignalWaiter([SIGINT, SIGTERM])
        let cluster = try MockKafkaCluster(brokers: brokers, topics: Dictionary(uniqueKeysWithValues: topic.map { ($0, partitions) }))
        print(cluster.bootstrapServers)
        fflush(nil)
        await signals.wait()
        cluster.stop()
    }
}
