import ArgumentParser
import Foundation
import ArrayFSM
import ArrayFSMService
import Kafka
import Logging
import Metrics
import PostgresNIO
import Prometheus
import ServiceLifecycle

/// `arrayfsm serve`: consume commands, apply them, publish results and transitions, until SIGTERM/SIGINT.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the consumer and the outbox relay until SIGTERM/SIGINT.",
        discussion: """
            Every option has an ARRAYFSM_* twin (--bootstrap-servers ↔ ARRAYFSM_BOOTSTRAP_SERVERS,
            --max-batch ↔ ARRAYFSM_MAX_BATCH, …). Any librdkafka property passes through with
            --kafka name=value (repeatable) or ARRAYFSM_KAFKA_<NAME> (dots as underscores), e.g.
            --kafka security.protocol=SASL_SSL.
            """
    )

    @Option(help: "postgres://… (env ARRAYFSM_DATABASE_URL)") var databaseURL: String?
    @Option(help: "host:port,… (env ARRAYFSM_BOOTSTRAP_SERVERS)") var bootstrapServers: String?
    @Option(help: "Consumer group (env ARRAYFSM_GROUP_ID; default arrayfsm)") var groupID: String?
    @Option(help: "Port of /metrics, /health and /ready; 0 disables (env ARRAYFSM_METRICS_PORT; default 9464)") var metricsPort: Int?
    @Option(help: "Commands applied per transaction at most (env ARRAYFSM_MAX_BATCH; default 500)") var maxBatch: Int?
    @Option(help: "Milliseconds to wait for a batch to fill (env ARRAYFSM_MAX_WAIT_MS; default 20)") var maxWaitMs: Int?
    @Option(help: "Partitions for topics created at start (env ARRAYFSM_PARTITIONS; default 8)") var partitions: Int32?
    @Option(help: "Replication factor for topics created at start; -1: the broker's default.replication.factor (env ARRAYFSM_REPLICATION_FACTOR; default -1)")
    var replicationFactor: Int32?
    @Option(help: "Commands topic (env ARRAYFSM_COMMANDS_TOPIC)") var commandsTopic: String?
    @Option(help: "Results topic (env ARRAYFSM_RESULTS_TOPIC)") var resultsTopic: String?
    @Option(help: "Transitions topic (env ARRAYFSM_TRANSITIONS_TOPIC)") var transitionsTopic: String?
    @Option(help: "Dead-letter topic (env ARRAYFSM_DLQ_TOPIC)") var dlqTopic: String?
    @Option(help: "A command's reply_to must start with this (env ARRAYFSM_REPLY_TOPIC_PREFIX; default arrayfsm.replies.)")
    var replyTopicPrefix: String?
    @Option(help: "Transactions a batch gets for an unexpected database error before its commands go one by one (env ARRAYFSM_DATABASE_ERROR_ATTEMPTS; default 3)")
    var databaseErrorAttempts: Int?
    @Option(help: "Processed command ids are kept this long for repeats (env ARRAYFSM_PROCESSED_COMMAND_RETENTION_SECONDS; default 604800)")
    var processedCommandRetentionSeconds: Int?
    @Option(help: "Largest command accepted in bytes (env ARRAYFSM_MAX_MESSAGE_BYTES; default 1048576)") var maxMessageBytes: Int?
    @OptionGroup var connect: ConnectOptions
    @Option(help: "Database connections (env ARRAYFSM_DATABASE_CONNECTIONS; default 4)") var databaseConnections: Int?
    @Option(help: "work_mem of serve's database sessions (env ARRAYFSM_DATABASE_WORK_MEM; default \(DatabaseURL.batchWorkMem))")
    var databaseWorkMem: String?
    @Option(help: "Exit (status 75) when one batch, or one outbox step, takes longer; 0 never (env ARRAYFSM_BATCH_TIMEOUT_SECONDS; default 120)")
    var batchTimeoutSeconds: Int?
    @Option(help: "Park an outbox row that kept failing this long while others were delivered (env ARRAYFSM_OUTBOX_PARK_AFTER_SECONDS; default 300)")
    var outboxParkAfterSeconds: Int?
    @Option(help: "Pause consuming while more outbox rows than this wait to be published; 0 never (env ARRAYFSM_MAX_OUTBOX_ROWS; default 100000)")
    var maxOutboxRows: Int?
    @Option(help: "/ready answers 503 once the outbox relay has made no progress this long with events waiting; 0 never (env ARRAYFSM_READY_RELAY_STALL_SECONDS; default 60)")
    var readyRelayStallSeconds: Int?
    @Option(help: "At shutdown, publishing what is left in the outbox may take this long; past it serve exits non-zero and the rest waits for the next instance (env ARRAYFSM_SHUTDOWN_TIMEOUT_SECONDS; default 30)")
    var shutdownTimeoutSeconds: Int?
    @Option(name: .customLong("kafka"), help: "librdkafka property name=value (repeatable)") var kafkaProperties: [String] = []
    @Option(help: "trace, debug, info, notice, warning, error (env ARRAYFSM_LOG_LEVEL)") var logLevel: String?

    func run() async throws {
        let logger = Environment.logger("arrayfsm.serve", level: logLevel)
        let url = try Environment.databaseURL(databaseURL)
        guard let bootstrap = Environment.value(bootstrapServers, "ARRAYFSM_BOOTSTRAP_SERVERS") else {
            throw ValidationError("no broker: pass --bootstrap-servers host:port or set ARRAYFSM_BOOTSTRAP_SERVERS")
        }
        var topics = Topics()
        topics.commands = Environment.value(commandsTopic, "ARRAYFSM_COMMANDS_TOPIC") ?? topics.commands
        topics.results = Environment.value(resultsTopic, "ARRAYFSM_RESULTS_TOPIC") ?? topics.results
        topics.transitions = Environment.value(transitionsTopic, "ARRAYFSM_TRANSITIONS_TOPIC") ?? topics.transitions
        topics.deadLetters = Environment.value(dlqTopic, "ARRAYFSM_DLQ_TOPIC") ?? topics.deadLetters
        topics.replyPrefix = Environment.value(replyTopicPrefix, "ARRAYFSM_REPLY_TOPIC_PREFIX") ?? topics.replyPrefix
        if let problem = topics.misconfiguration { throw ValidationError(problem) }
        let properties = try Environment.kafkaProperties(kafkaProperties)
        let groupName = Environment.value(groupID, "ARRAYFSM_GROUP_ID") ?? "arrayfsm"
        let replication = try Environment.int32(replicationFactor, "ARRAYFSM_REPLICATION_FACTOR") ?? -1
        guard replication == -1 || replication >= 1 else {
            throw ValidationError("the replication factor must be -1 (the broker's default) or at least 1, got \(replication)")
        }
        let relayStallSeconds = try Environment.int(readyRelayStallSeconds, "ARRAYFSM_READY_RELAY_STALL_SECONDS") ?? 60
        let shutdownSeconds = try Environment.int(shutdownTimeoutSeconds, "ARRAYFSM_SHUTDOWN_TIMEOUT_SECONDS") ?? 30
        guard relayStallSeconds >= 0, shutdownSeconds >= 1 else {
            throw ValidationError("the relay stall must be 0 (never) or more seconds, the shutdown timeout at least 1 second")
        }
        let retentionSeconds = try Environment.int(processedCommandRetentionSeconds, "ARRAYFSM_PROCESSED_COMMAND_RETENTION_SECONDS") ?? 604_800
        guard retentionSeconds > 0 else { throw ValidationError("--processed-command-retention-seconds must be positive") }
        // Settings are checked before anything connects. PostgreSQL that cannot be reached at start
        // is one line and an exit, not a pool retrying.
        let connectTimeout = try connect.timeout()
        try await url.checkConnection(timeout: connectTimeout, logger: logger)

        let relayConfiguration = try KafkaConfiguration(
            bootstrapServers: bootstrap, clientID: "arrayfsm-relay", properties: OutboxRelay.producerProperties.merging(properties) { $1 })
        let producer = try KafkaProducer(configuration: relayConfiguration, logger: logger)
        let consumer = try KafkaConsumer(
            configuration: KafkaConfiguration(
                bootstrapServers: bootstrap, clientID: "arrayfsm-serve", groupID: groupName,
                properties: ["isolation.level": "read_committed", "statistics.interval.ms": "5000"].merging(properties) { $1 }),
            logger: logger)
        await createTopics(topics, replicationFactor: replication, bootstrap: bootstrap, properties: properties, logger: logger)

        let client = PostgresClient(
            configuration: try url.configuration(
                maxConnections: try Environment.int(databaseConnections, "ARRAYFSM_DATABASE_CONNECTIONS") ?? 4,
                parameters: DatabaseURL.batchParameters(
                    workMem: Environment.value(databaseWorkMem, "ARRAYFSM_DATABASE_WORK_MEM") ?? DatabaseURL.batchWorkMem)
                    + [("application_name", "arrayfsm serve")],
                connectTimeout: connectTimeout),
            backgroundLogger: logger)
        let database = ArrayDatabase(client: client)
        let processor = CommandBatchProcessor(
            database: database, topics: topics,
            maxMessageBytes: try Environment.int(maxMessageBytes, "ARRAYFSM_MAX_MESSAGE_BYTES") ?? (1 << 20),
            maxAttempts: try Environment.int(databaseErrorAttempts, "ARRAYFSM_DATABASE_ERROR_ATTEMPTS") ?? 3)
        let timeoutSeconds = try Environment.int(batchTimeoutSeconds, "ARRAYFSM_BATCH_TIMEOUT_SECONDS") ?? 120
        let watchdog = timeoutSeconds <= 0 ? nil : StallWatchdog(timeout: .seconds(timeoutSeconds)) { _ in
            // Crash-only: a stuck step cannot be freed from inside, and a graceful shutdown would
            // wait for it. Nothing it did was committed as consumed or published; the restart redoes it.
            FileHandle.standardError.write(Data("arrayfsm serve: a batch or the outbox relay is stuck; exiting with status 75 for a restart\n".utf8))
            Foundation.exit(75)
        }
        let parkAfter = try Environment.int(outboxParkAfterSeconds, "ARRAYFSM_OUTBOX_PARK_AFTER_SECONDS") ?? 300
        guard parkAfter >= 0 else { throw ValidationError("--outbox-park-after-seconds must be 0 or more, got \(parkAfter)") }
        let relay = OutboxRelay(
            database: database, producer: producer, parkAfter: .seconds(parkAfter),
            renewProducer: { try KafkaProducer(configuration: relayConfiguration, logger: logger) }, watchdog: watchdog, logger: logger)

        var factory = PrometheusMetricsFactory()
        factory.defaultDurationHistogramBuckets = [
            .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(20),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
        ]
        factory.defaultValueHistogramBuckets = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000]
        MetricsSystem.bootstrap(HelpTextMetricsFactory(factory, help: ServiceMetrics.help))
        let registry = factory.registry
        let metrics = ServiceMetrics()

        let commandConsumer = CommandConsumer(
            consumer: consumer, processor: processor, relay: relay, topics: topics,
            maxBatch: try Environment.int(maxBatch, "ARRAYFSM_MAX_BATCH") ?? 500,
            maxWait: .milliseconds(try Environment.int(maxWaitMs, "ARRAYFSM_MAX_WAIT_MS") ?? 20),
            observer: metrics, watchdog: watchdog,
            maxOutboxRows: try Environment.int(maxOutboxRows, "ARRAYFSM_MAX_OUTBOX_ROWS") ?? 100_000, logger: logger)
        let server = ArrayFSMServer(
            consumer: commandConsumer, relay: relay, producer: producer, metrics: metrics,
            readyRelayStall: relayStallSeconds == 0 ? nil : .seconds(relayStallSeconds), shutdownTimeout: .seconds(shutdownSeconds),
            logger: logger)

        let retention = ProcessedCommandRetention(database: database, retention: .seconds(retentionSeconds), logger: logger)

        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: client), .init(service: retention)]
        let port = try Environment.int(metricsPort, "ARRAYFSM_METRICS_PORT") ?? 9464
        if port > 0 {
            services.append(.init(service: HTTPEndpoint(
                port: port, metrics: { registry.emitToBuffer() }, unready: { server.readiness.obstacles.map(\.description) }, logger: logger)))
        }
        services.append(.init(service: server, successTerminationBehavior: .gracefullyShutdownGroup))

        // Shutdown runs in reverse order: the server stops first, the database pool last.
        let group = ServiceGroup(
            configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        logger.info("serving", metadata: [
            "database": "\(url)", "bootstrap": "\(bootstrap)", "group": "\(groupName)", "commands": "\(topics.commands)",
        ])
        try await group.run()
    }

    func createTopics(_ topics: Topics, replicationFactor: Int32, bootstrap: String, properties: [String: String], logger: Logger) async {
        let count = (try? Environment.int32(partitions, "ARRAYFSM_PARTITIONS")) ?? nil
        do {
            let admin = try KafkaAdmin(configuration: KafkaConfiguration(bootstrapServers: bootstrap, properties: properties))
            for topic in topics.all {
                try await admin.createTopicIfMissing(topic, partitions: count ?? 8, replicationFactor: replicationFactor, timeout: .seconds(5))
            }
        } catch {
            // The mock cluster has no CreateTopics; a production cluster may forbid it. Topics that
            // already exist (or are auto-created) work either way.
            logger.warning("could not create topics; assuming they exist", metadata: [
                "error": "\(error)", "replication_factor": "\(replicationFactor)",
            ])
        }
    }
}
