// ArrayFSMService: `arrayfsm serve` assembled from a ServeConfiguration — the one place that
// wires the pool, the producer, the relay, the HTTP endpoint and the consumer into a ServiceGroup.
import ArrayFSM
import Foundation
import Kafka
import Logging
import PostgresNIO
import ServiceLifecycle
import UnixSignals

/// `arrayfsm serve` as one ServiceGroup, built from a ``ServeConfiguration``. The services start
/// in this order and shut down gracefully in reverse:
///
/// 1. the database pool (when the server owns it),
/// 2. the relay's producer — closed last among the Kafka clients, after a flush,
/// 3. the outbox relay — at shutdown it publishes what is left, within the shutdown timeout,
/// 4. the processed-command retention, the database probe and the gauge sampler,
/// 5. the HTTP endpoint (`/metrics`, `/health`, `/ready`), when a port is set,
/// 6. the command consumer — stops fetching, finishes the batch in hand, commits, leaves the group.
///
/// Any service that fails shuts the group down the same graceful way (a relay whose producer
/// failed for good stops the consumer; the batch in hand commits and its events wait in the
/// outbox), and ``run()`` then throws that error so the supervisor starts a new process.
/// SIGTERM/SIGINT (when given as signals) and ``triggerGracefulShutdown()`` take the same path.
public final class ArrayFSMServer: Sendable {
    public let configuration: ServeConfiguration
    public let database: ArrayDatabase
    public let consumer: CommandConsumer
    public let relay: OutboxRelay
    /// What `GET /ready` answers from.
    public let readiness: Readiness
    /// The pool, when the server made it from ``ServeConfiguration/databaseURL``.
    let ownPool: PostgresClient?
    let group: ServiceGroup
    let logger: Logger

    /// What `serve` records, and the text `GET /metrics` answers with.
    public struct Observability: Sendable {
        public var metrics: ServiceMetrics
        public var exposition: @Sendable () -> [UInt8]

        public init(metrics: ServiceMetrics, exposition: @escaping @Sendable () -> [UInt8]) {
            self.metrics = metrics
            self.exposition = exposition
        }
    }

    /// Builds every part of serve from `configuration`; nothing connects until ``run()``.
    ///
    /// - Parameters:
    ///   - database: a pool the caller runs (tests share theirs); nil: the server makes one from
    ///     ``ServeConfiguration/databaseURL`` and runs it first in its group.
    ///   - observability: metrics to record and expose; nil: none (`/metrics` answers empty).
    ///   - gracefulShutdownSignals: signals that start the graceful shutdown (serve: SIGTERM, SIGINT).
    ///   - onStall: what a stuck batch or outbox step does (``ServeConfiguration/batchTimeout``);
    ///     serve exits for a restart.
    public init(configuration: ServeConfiguration, database: ArrayDatabase? = nil, observability: Observability? = nil,
                gracefulShutdownSignals: [UnixSignal] = [], onStall: @escaping @Sendable (Duration) -> Void = ArrayFSMServer.exitForRestart,
                logger: Logger) throws {
        try configuration.validate()
        guard let bootstrap = configuration.bootstrapServers else { throw ServeConfiguration.Invalid.noBroker }
        if let database {
            self.database = database
            ownPool = nil
        } else {
            guard let url = configuration.databaseURL else { throw ServeConfiguration.Invalid.noDatabase }
            let pool = PostgresClient(
                configuration: try url.configuration(
                    maxConnections: configuration.databaseConnections,
                    parameters: DatabaseURL.batchParameters(workMem: configuration.databaseWorkMem) + [("application_name", "arrayfsm serve")],
                    connectTimeout: configuration.connectTimeout),
                backgroundLogger: logger)
            self.database = ArrayDatabase(client: pool)
            ownPool = pool
        }
        self.configuration = configuration
        self.logger = logger
        let watchdog = configuration.batchTimeout.map { StallWatchdog(timeout: $0, onStall: onStall) }

        let relayKafka = try KafkaConfiguration(
            bootstrapServers: bootstrap, clientID: "arrayfsm-relay",
            properties: configuration.relayProducerProperties)
        relay = OutboxRelay(
            database: self.database, producer: try KafkaProducer(configuration: relayKafka, logger: logger),
            batchSize: configuration.relayBatch, idleInterval: configuration.relayIdleInterval,
            parkAfter: configuration.outboxParkAfter, minimumAttempts: configuration.outboxParkMinimumAttempts,
            shutdownTimeout: configuration.shutdownTimeout,
            renewProducer: { try KafkaProducer(configuration: relayKafka, logger: logger) }, watchdog: watchdog, logger: logger)
        readiness = Readiness(
            database: OutageLog(started: "database unreachable", ended: "database reachable again", logger: logger),
            relay: relay.progress, relayStallLimit: configuration.readyRelayStall, producer: { [relay] in relay.producer })
        consumer = CommandConsumer(
            consumer: try KafkaConsumer(
                configuration: KafkaConfiguration(
                    bootstrapServers: bootstrap, clientID: "arrayfsm-serve", groupID: configuration.groupID,
                    properties: Self.consumerProperties.merging(configuration.kafkaProperties) { $1 }),
                logger: logger),
            processor: CommandBatchProcessor(
                database: self.database, topics: configuration.topics, maxMessageBytes: configuration.maxMessageBytes,
                maxAttempts: configuration.databaseErrorAttempts),
            relay: relay, topics: configuration.topics, maxBatch: configuration.maxBatch, maxWait: configuration.maxWait,
            observer: observability?.metrics, watchdog: watchdog, maxOutboxRows: configuration.maxOutboxRows,
            outboxCheckInterval: configuration.outboxCheckInterval, readiness: readiness, logger: logger)

        var services: [any Service] = []
        if let ownPool { services.append(ownPool) }
        services.append(RelayProducerService(relay: relay))
        services.append(relay)
        services.append(ProcessedCommandRetention(database: self.database, retention: configuration.processedCommandRetention, logger: logger))
        services.append(DatabaseProbe(database: self.database, outages: readiness.database, interval: .seconds(1), timeout: .seconds(5), logger: logger))
        if let observability {
            services.append(GaugeSampler(metrics: observability.metrics, consumer: consumer, relay: relay, logger: logger))
        }
        if configuration.metricsPort > 0 {
            let readiness = readiness
            let exposition: @Sendable () -> [UInt8]
            if let observability { exposition = observability.exposition } else { exposition = { [] } }
            services.append(HTTPEndpoint(
                port: configuration.metricsPort, metrics: exposition, unready: { readiness.obstacles.map(\.description) }, logger: logger))
        }
        services.append(consumer)
        group = ServiceGroup(configuration: .init(
            services: services.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup,
                                          failureTerminationBehavior: .gracefullyShutdownGroup) },
            gracefulShutdownSignals: gracefulShutdownSignals, logger: logger))
    }

    /// Properties of the command consumer, under the operator's.
    static let consumerProperties = ["isolation.level": "read_committed", "statistics.interval.ms": "5000"]

    /// Whether the server is ready (see ``Readiness``).
    public var isReady: Bool { readiness.isReady }

    /// What `serve` checks before it makes any client: a broker and a database are named, and
    /// PostgreSQL answers — one line and an exit when it cannot be reached, not a pool retrying.
    public static func checkBeforeServing(_ configuration: ServeConfiguration, logger: Logger) async throws {
        guard configuration.bootstrapServers != nil else { throw ServeConfiguration.Invalid.noBroker }
        guard let url = configuration.databaseURL else { throw ServeConfiguration.Invalid.noDatabase }
        try await url.checkConnection(timeout: configuration.connectTimeout, logger: logger)
    }

    /// Creates missing topics, then runs the group until it has shut down.
    ///
    /// - Throws: the first error of a service (after the graceful shutdown it caused), e.g.
    ///   ``OutboxRelay/ShutdownTimedOut`` or the producer's fatal error.
    public func run() async throws {
        if configuration.createsTopics { await createTopics() }
        logger.info("serving", metadata: [
            "database": "\(configuration.databaseURL.map { "\($0)" } ?? "given")", "bootstrap": "\(configuration.bootstrapServers ?? "")",
            "group": "\(configuration.groupID)", "commands": "\(configuration.topics.commands)",
        ])
        try await group.run()
        logger.info("stopped cleanly")
    }

    /// Starts the graceful shutdown SIGTERM starts; ``run()`` returns when it is done.
    public func triggerGracefulShutdown() async {
        await group.triggerGracefulShutdown()
    }

    /// Creates serve's topics where missing; a cluster that cannot or may not (the mock cluster
    /// has no CreateTopics; a production cluster may forbid it) gets a warning: topics that exist
    /// already, or are auto-created, work either way.
    func createTopics() async {
        do {
            let admin = try KafkaAdmin(configuration: KafkaConfiguration(
                bootstrapServers: configuration.bootstrapServers ?? "", properties: configuration.kafkaProperties))
            for topic in configuration.topics.all {
                try await admin.createTopicIfMissing(
                    topic, partitions: configuration.partitions, replicationFactor: configuration.replicationFactor, timeout: .seconds(5))
            }
        } catch {
            logger.warning("could not create topics; assuming they exist", metadata: [
                "error": "\(error)", "replication_factor": "\(configuration.replicationFactor)",
            ])
        }
    }

    /// Crash-only: a stuck step cannot be freed from inside, and a graceful shutdown would wait
    /// for it. Nothing it did was committed as consumed or published; the restart redoes it.
    public static let exitForRestart: @Sendable (Duration) -> Void = { _ in
        FileHandle.standardError.write(Data("arrayfsm serve: a batch or the outbox relay is stuck; exiting with status 75 for a restart\n".utf8))
        exit(75)
    }
}
