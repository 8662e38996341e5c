// ArrayFSMService: every setting of `arrayfsm serve`, typed, with its default. Parsed from flags and
// `ARRAYFSM_*` variables by ``ServeSetting``'s table; turned into a running service by ``ArrayFSMServer``.
import ArrayFSM
import Logging

/// Everything `arrayfsm serve` can be told, with the defaults an operator gets when they say
/// nothing. ``ServeSetting/all`` is the table that names each field's flag and environment
/// variable, parses it and documents it; ``ArrayFSMServer/init(configuration:database:metrics:onStall:)``
/// is the one place that builds the running service from it.
public struct ServeConfiguration: Sendable {
    /// The database; nil until given (a service built on a caller's pool does not need it).
    public var databaseURL: DatabaseURL?
    /// `host:port,…`; nil until given.
    public var bootstrapServers: String?
    public var groupID = "arrayfsm"
    public var topics = Topics()
    /// Port of `/metrics`, `/health` and `/ready`; 0: no endpoint.
    public var metricsPort = 9464
    /// Commands applied per transaction at most.
    public var maxBatch = 500
    /// How long a poll waits for a batch to fill.
    public var maxWait = Duration.milliseconds(20)
    /// Partitions of the topics serve creates at start.
    public var partitions: Int32 = 8
    /// Replication factor of the topics serve creates at start; -1: the broker's default.
    public var replicationFactor: Int32 = -1
    /// Whether serve creates missing topics at start (a cluster that forbids it only logs a warning).
    public var createsTopics = true
    /// Transactions a batch gets for an unexpected database error before its commands go one by one.
    public var databaseErrorAttempts = 3
    /// How long processed command ids are kept to answer repeats.
    public var processedCommandRetention = Duration.seconds(604_800)
    /// Largest command accepted, in bytes.
    public var maxMessageBytes = 1 << 20
    /// How long connecting to PostgreSQL may take before serve gives up with one line saying why.
    public var connectTimeout = DatabaseURL.defaultConnectTimeout
    public var databaseConnections = 4
    /// `work_mem` of serve's database sessions.
    public var databaseWorkMem = DatabaseURL.batchWorkMem
    /// A batch or outbox step that takes longer is stuck: serve exits (status 75) for a restart; nil: never.
    public var batchTimeout: Duration? = .seconds(120)
    /// An outbox row that kept failing this long, while others were delivered, is parked.
    public var outboxParkAfter = Duration.seconds(300)
    /// Failed attempts an outbox row needs before it may be parked.
    public var outboxParkMinimumAttempts = 3
    /// Waiting outbox rows above which the consumer pauses; nil: never.
    public var maxOutboxRows: Int? = 100_000
    /// How often the outbox is counted against ``maxOutboxRows``.
    public var outboxCheckInterval = Duration.milliseconds(500)
    /// Outbox rows the relay reads and publishes per round.
    public var relayBatch = 2000
    /// How often the relay looks at the outbox without being woken (rows written by other instances).
    public var relayIdleInterval = Duration.milliseconds(100)
    /// No relay progress for this long, with rows waiting, makes serve not ready; nil: never.
    public var readyRelayStall: Duration? = .seconds(60)
    /// How long publishing what is left in the outbox may take at shutdown.
    public var shutdownTimeout = Duration.seconds(30)
    /// librdkafka properties for every client serve makes, over serve's own.
    public var kafkaProperties: [String: String] = [:]
    public var logLevel = Logger.Level.info

    /// The defaults.
    public init() {}

    /// The relay producer's librdkafka properties: ``OutboxRelay/producerProperties`` under the
    /// operator's `--kafka` and `ARRAYFSM_KAFKA_*` ones.
    public var relayProducerProperties: [String: String] { OutboxRelay.producerProperties.merging(kafkaProperties) { $1 } }

    /// Reads every setting from `flags` (by flag name, without the dashes) or else from
    /// `environment` (by `ARRAYFSM_*` name; empty values count as unset); `kafkaFlags` are
    /// `name=value` pairs that win over `ARRAYFSM_KAFKA_*` variables.
    public init(flags: [String: String], kafkaFlags: [String] = [], environment: [String: String]) throws(Invalid) {
        self.init()
        for setting in ServeSetting.all {
            let given = flags[setting.flag] ?? environment[setting.environmentName].flatMap { $0.isEmpty ? nil : $0 }
            if let given { try setting.apply(given, &self) }
        }
        kafkaProperties = try Self.kafkaProperties(flags: kafkaFlags, environment: environment)
        try validate()
    }

    /// `ARRAYFSM_KAFKA_<NAME>` passes a librdkafka property (dots as underscores).
    public static let kafkaPrefix = "ARRAYFSM_KAFKA_"

    /// librdkafka properties from `--kafka name=value` flags and `ARRAYFSM_KAFKA_NAME` variables
    /// (underscores become dots); flags win. Every command that talks to Kafka reads them so.
    public static func kafkaProperties(flags: [String], environment: [String: String]) throws(Invalid) -> [String: String] {
        var properties: [String: String] = [:]
        for (name, value) in environment where name.hasPrefix(kafkaPrefix) {
            properties[name.dropFirst(kafkaPrefix.count).lowercased().replacingOccurrences(of: "_", with: ".")] = value
        }
        for flag in flags {
            guard let equals = flag.firstIndex(of: "="), equals != flag.startIndex else {
                throw Invalid("--kafka takes name=value, got '\(flag)'")
            }
            properties[String(flag[..<equals])] = String(flag[flag.index(after: equals)...])
        }
        return properties
    }

    /// The environment that makes a child `arrayfsm serve` run with this configuration: every
    /// setting that differs from its default, and the librdkafka properties.
    public var environment: [String: String] {
        let defaults = ServeConfiguration()
        var environment: [String: String] = [:]
        for setting in ServeSetting.all {
            let value = setting.render(self)
            if value != setting.render(defaults), let value { environment[setting.environmentName] = value }
        }
        for (name, value) in kafkaProperties {
            environment[Self.kafkaPrefix + name.uppercased().replacingOccurrences(of: ".", with: "_")] = value
        }
        return environment
    }

    /// Checks what no single setting can: serve needs a broker and never publishes to the topic it reads.
    public func validate() throws(Invalid) {
        if let problem = topics.misconfiguration { throw Invalid(problem) }
    }

    /// A setting that cannot be used, in one line naming it.
    public struct Invalid: Error, CustomStringConvertible {
        public var description: String

        public init(_ description: String) {
            self.description = description
        }

        static let noBroker = Invalid("no broker: pass --bootstrap-servers host:port or set ARRAYFSM_BOOTSTRAP_SERVERS")
        static let noDatabase = Invalid("no database: pass --database-url postgres://user@host:5432/db or set ARRAYFSM_DATABASE_URL")
    }
}
