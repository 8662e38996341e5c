// ArrayFSMTools — developer tools the CLI runs: benchmarks, throwaway PostgreSQL, brokers, child
// processes, a serve on a local broker. Never linked into the service itself.
import ArrayFSM
import ArrayFSMClient
import ArrayFSMService
import Foundation
import Kafka
import Logging
import Synchronization

/// A running `serve` for tests: an in-process mock Kafka cluster with the arrayfsm topics (or an
/// external broker, for `arrayfsm bench`), the server on a test database, a producer for
/// commands, and a reader for the events.
public final class ServiceHarness: Sendable {
    public let database: ArrayDatabase
    public let bootstrapServers: String
    public let topics: Topics
    public let producer: KafkaProducer
    public let groupID: String
    /// The in-process cluster, unless the harness uses an external broker.
    public let cluster: MockKafkaCluster?
    let servers = Mutex<[(ArrayFSMServer, Task<Void, any Error>)]>([])
    let logger: Logger

    /// Starts a cluster with `partitions` partitions per topic; no server yet (``startServer()``).
    public convenience init(database: ArrayDatabase, partitions: Int32 = 4, logger: Logger = ToolLogger.default) throws {
        var topics = Topics()
        topics.commands = "commands-\(UUID().uuidString.prefix(8))"
        let cluster = try MockKafkaCluster(brokers: 1, topics: Dictionary(uniqueKeysWithValues: topics.all.map { ($0, partitions) }))
        try self.init(database: database, bootstrapServers: cluster.bootstrapServers, topics: topics,
                      groupID: "arrayfsm-test-\(UUID().uuidString.prefix(8))", cluster: cluster, logger: logger)
    }

    /// Uses a broker that is already running (topics are created by `serve` when it starts, or
    /// must exist); `groupID` is the group of the `serve` instances measured or started.
    public init(database: ArrayDatabase, bootstrapServers: String, topics: Topics, groupID: String,
                cluster: MockKafkaCluster? = nil, logger: Logger = ToolLogger.default) throws {
        self.topics = topics
        self.cluster = cluster
        self.bootstrapServers = bootstrapServers
        self.database = database
        self.groupID = groupID
        self.producer = try KafkaProducer(
            configuration: KafkaConfiguration(bootstrapServers: bootstrapServers, clientID: "test-producer", properties: ["linger.ms": "1"]))
        self.logger = logger
    }

    /// Consumer settings that make group changes take seconds, not minutes, on the mock cluster.
    public static let fastGroupProperties = [
        "session.timeout.ms": "6000", "heartbeat.interval.ms": "500", "max.poll.interval.ms": "10000",
        // The mock cluster answers a fetch only when fetch.wait.max.ms (default 500 ms) runs out, even
        // when data arrives earlier; real brokers answer at once. Without this every hop costs up to 0.5 s.
        "fetch.wait.max.ms": "5",
    ]

    /// What a started server is configured with: the harness's broker, group and topics, the
    /// mock cluster's fast group settings, no HTTP endpoint, and no stall exit
    /// (a test process must not exit; ``startServer(watchdog:_:)`` takes a watchdog instead).
    public var serveConfiguration: ServeConfiguration {
        var configuration = ServeConfiguration()
        configuration.bootstrapServers = bootstrapServers
        configuration.groupID = groupID
        configuration.topics = topics
        configuration.metricsPort = 0
        configuration.batchTimeout = nil
        // The mock cluster has no CreateTopics; the harness made them.
        configuration.createsTopics = cluster == nil
        configuration.kafkaProperties = Self.fastGroupProperties
        return configuration
    }

    /// Starts one more `serve` member of the group on the test's database, configured as
    /// ``serveConfiguration`` and then by `configure`; its batches and relay guarded by `watchdog`
    /// when given. Returns it; ``stop(_:)`` shuts it down as SIGTERM would.
    @discardableResult
    public func startServer(watchdog: StallWatchdog? = nil, _ configure: (inout ServeConfiguration) -> Void = { _ in }) throws -> ArrayFSMServer {
        var configuration = serveConfiguration
        configuration.batchTimeout = watchdog?.timeout
        configure(&configuration)
        var onStall: @Sendable (Duration) -> Void = { _ in }
        if let watchdog { onStall = watchdog.onStall }
        let server = try ArrayFSMServer(configuration: configuration, database: database, onStall: onStall, logger: logger)
        let task = Task { try await server.run() }
        servers.withLock { $0.append((server, task)) }
        return server
    }

    /// Starts `arrayfsm serve` as a child process in the group (as production runs it), with the
    /// environment of ``serveConfiguration`` changed by `configure`, and `extraEnvironment` over
    /// it; stop it with SIGTERM and wait for it. `ARRAYFSM_METRICS_PORT` in the test's environment
    /// opens its HTTP endpoint; `ARRAYFSM_SERVE_LOG_LEVEL=debug` shows each batch in its log file.
    public func startServerProcess(binary: String, databaseURL: DatabaseURL, extraEnvironment: [String: String] = [:],
                                   _ configure: (inout ServeConfiguration) -> Void = { _ in }) throws -> ChildProcess {
        var configuration = serveConfiguration
        configuration.databaseURL = databaseURL
        // A child may exit for a restart when stuck, as production's serve does.
        configuration.batchTimeout = ServeConfiguration().batchTimeout
        let given = ProcessInfo.processInfo.environment
        configuration.metricsPort = given["ARRAYFSM_METRICS_PORT"].flatMap { Int($0) } ?? 0
        configuration.logLevel = given["ARRAYFSM_SERVE_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        configure(&configuration)
        var environment = configuration.environment
        // Explicit, so that a variable of the test's own environment cannot change the child's settings.
        for setting in ServeSetting.all where environment[setting.environmentName] == nil {
            environment[setting.environmentName] = ""
        }
        environment.merge(extraEnvironment) { $1 }
        return try ChildProcess([binary, "serve"], environment: environment)
    }

    /// Stops a server as SIGTERM would and waits for it to finish.
    public func stop(_ server: ArrayFSMServer) async throws {
        let task = servers.withLock { list -> Task<Void, any Error>? in
            guard let index = list.firstIndex(where: { $0.0 === server }) else { return nil }
            return list.remove(at: index).1
        }
        await server.triggerGracefulShutdown()
        try await task?.value
    }

    /// Stops every server (the cluster keeps running).
    public func stopServers() async throws {
        for (server, _) in servers.withLock({ $0 }) { try await stop(server) }
    }

    /// Stops every server, the producer and the cluster.
    public func shutdown() async throws {
        try await stopServers()
        await producer.close()
        cluster?.stop()
    }

    /// Produces command messages (key, value) in order; waits for their delivery unless told not to.
    public func produce(_ messages: [(key: [UInt8]?, value: [UInt8]?)], waitForDelivery: Bool = true) async throws {
        let outgoing = messages.map { KafkaOutgoingMessage(topic: topics.commands, key: $0.key, value: $0.value) }
        if waitForDelivery {
            let report = try await producer.send(outgoing)
            if let failure = report.failures.first { throw failure }
        } else {
            try await producer.enqueue(outgoing) { _ in }
        }
    }

    /// A client of the harness's serve (its broker and commands topic) for tools that send
    /// commands as schedulers do: a benchmark's flood may wait long for its answers, so an
    /// attempt is sent again only after a minute.
    public func clientConfiguration(clientID: String = "tool-\(UUID().uuidString.prefix(8).lowercased())") -> ArrayFSMClient.Configuration {
        var configuration = ArrayFSMClient.Configuration(bootstrapServers: bootstrapServers)
        configuration.commandsTopic = topics.commands
        configuration.clientID = clientID
        configuration.attemptTimeout = .seconds(60)
        configuration.deadline = .seconds(1800)
        return configuration
    }

    /// Reads `topic` from the beginning until `done` holds or `timeout` passes; returns the values as JSON objects
    /// (dead letters: their raw bytes under "raw" and headers under "headers").
    public func read(
        _ topic: String, timeout: Duration = .seconds(60), until done: ([KafkaRecord]) -> Bool
    ) async throws -> [KafkaRecord] {
        let consumer = try KafkaConsumer(
            configuration: KafkaConfiguration(
                bootstrapServers: bootstrapServers, clientID: "test-reader", groupID: "reader-\(UUID().uuidString.prefix(8))",
                properties: Self.fastGroupProperties.merging(["enable.auto.commit": "false"]) { $1 }),
            logger: logger)
        try consumer.subscribe(topics: [topic])
        var records: [KafkaRecord] = []
        let deadline = ContinuousClock.now + timeout
        while !done(records) && ContinuousClock.now < deadline {
            let polled = try await consumer.poll(maxMessages: 5000, timeout: .milliseconds(200))
            records += polled.messages.map(KafkaRecord.init)
        }
        await consumer.close()
        return records
    }

    /// Offsets the server's group committed on the commands topic.
    public func committedOffsets(partitions: Int32 = 4) async throws -> [Int32: Int64] {
        let consumer = try KafkaConsumer(
            configuration: KafkaConfiguration(bootstrapServers: bootstrapServers, clientID: "offset-reader", groupID: groupID), logger: logger)
        let offsets = try await consumer.committedOffsets(
            for: (0..<partitions).map { KafkaTopicPartition(topic: topics.commands, partition: $0) })
        await consumer.close()
        return Dictionary(uniqueKeysWithValues: offsets.map { ($0.key.partition, $0.value) })
    }
}
