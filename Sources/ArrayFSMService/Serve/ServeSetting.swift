// ArrayFSMService: the table of serve's settings — flag, `ARRAYFSM_*` name, default, help, parser.
// `arrayfsm serve --help` and docs/operations.md's settings table are made from it (a test checks both).
import ArrayFSM
import Logging

/// One setting of `arrayfsm serve`: its flag (`--max-batch`), its environment variable
/// (`ARRAYFSM_MAX_BATCH`, the flag's name in capitals), what it means, how a value is read into a
/// ``ServeConfiguration`` and written back out (for a child process's environment and for the
/// default shown in help). A flag wins over its variable.
public struct ServeSetting {
    /// The flag's name without the dashes.
    public let flag: String
    /// What the setting does, in one sentence.
    public let help: String
    let apply: (String, inout ServeConfiguration) throws(ServeConfiguration.Invalid) -> Void
    /// The configuration's value as the setting's text; nil when it has none (no database given).
    let render: (ServeConfiguration) -> String?

    /// `ARRAYFSM_` and the flag in capitals, dashes as underscores.
    public var environmentName: String { "ARRAYFSM_" + flag.uppercased().replacingOccurrences(of: "-", with: "_") }

    /// The default as help and docs show it.
    public var defaultText: String { render(ServeConfiguration()) ?? "none" }

    /// The default in a table cell: code, "(empty)" or "none".
    var defaultMarkdown: String {
        guard let text = render(ServeConfiguration()) else { return "none" }
        return text.isEmpty ? "(empty)" : "`\(text)`"
    }

    /// Every setting, in the order `--help` lists them.
    public static var all: [ServeSetting] {
        [
            text("database-url", "postgres://user:password@host:5432/db (required)", \.databaseURL) { text throws(ServeConfiguration.Invalid) in
                do { return try DatabaseURL(text) } catch { throw .init("\(error)") }
            } render: { $0?.string },
            text("bootstrap-servers", "Kafka brokers, host:port,… (required)", \.bootstrapServers) { $0 } render: { $0 },
            text("group-id", "Consumer group of the serve instances", \.groupID) { $0 } render: { $0 },
            text("commands-topic", "Topic the commands are read from", \.topics.commands) { $0 } render: { $0 },
            text("results-topic", "Topic result events are published to", \.topics.results) { $0 } render: { $0 },
            text("transitions-topic", "Topic transition events are published to", \.topics.transitions) { $0 } render: { $0 },
            text("dlq-topic", "Topic of dead letters (messages that are not commands)", \.topics.deadLetters) { $0 } render: { $0 },
            text("reply-topic-prefix", "A command's reply_to must start with this; empty: no reply topics", \.topics.replyPrefix) { $0 } render: { $0 },
            integer("metrics-port", "Port of /metrics, /health and /ready; 0: none", \.metricsPort, atLeast: 0),
            integer("max-batch", "Commands applied per transaction at most", \.maxBatch, atLeast: 1),
            milliseconds("max-wait-ms", "How long a poll waits for a batch to fill", \.maxWait),
            integer32("partitions", "Partitions of the topics created at start", \.partitions, atLeast: 1),
            text("replication-factor", "Replication factor of the topics created at start; -1: the broker's default.replication.factor",
                 \.replicationFactor) { text throws(ServeConfiguration.Invalid) in
                guard let factor = Int32(text), factor == -1 || factor >= 1 else {
                    throw .init("the replication factor must be -1 (the broker's default) or at least 1, got \(text)")
                }
                return factor
            } render: { String($0) },
            boolean("create-topics", "Create missing topics at start (a cluster that forbids it: a warning)", \.createsTopics),
            integer("database-error-attempts", "Transactions a batch gets for an unexpected database error before its commands go one by one",
                    \.databaseErrorAttempts, atLeast: 1),
            seconds("processed-command-retention-seconds", "Processed command ids are kept this long to answer repeats",
                    \.processedCommandRetention, atLeast: 1),
            integer("max-message-bytes", "Largest command accepted, in bytes", \.maxMessageBytes, atLeast: 1),
            seconds("connect-timeout-seconds", "Give up connecting to PostgreSQL after this long, with one line saying why",
                    \.connectTimeout, atLeast: 1),
            integer("database-connections", "Database connections in serve's pool", \.databaseConnections, atLeast: 1),
            text("database-work-mem", "work_mem of serve's database sessions", \.databaseWorkMem) { $0 } render: { $0 },
            secondsOrNever("batch-timeout-seconds", "Exit (status 75, for a restart) when one batch or one outbox step takes longer; 0: never",
                           \.batchTimeout),
            seconds("outbox-park-after-seconds", "Park an outbox row that kept failing this long while others were delivered",
                    \.outboxParkAfter, atLeast: 0),
            integer("outbox-park-min-attempts", "Failed deliveries an outbox row needs before it may be parked",
                    \.outboxParkMinimumAttempts, atLeast: 1),
            countOrNever("max-outbox-rows", "Pause consuming while more outbox rows than this wait to be published; 0: never", \.maxOutboxRows),
            milliseconds("outbox-check-interval-ms", "How often the waiting outbox rows are counted against max-outbox-rows",
                         \.outboxCheckInterval),
            integer("relay-batch", "Outbox rows the relay reads and publishes per round", \.relayBatch, atLeast: 1),
            milliseconds("relay-idle-ms", "How often the relay looks for rows other instances wrote, when not woken",
                         \.relayIdleInterval, atLeast: 1),
            secondsOrNever("ready-relay-stall-seconds", "/ready answers 503 once the relay made no progress this long with events waiting; 0: never",
                           \.readyRelayStall),
            seconds("shutdown-timeout-seconds", "At shutdown, publishing what is left in the outbox may take this long; past it serve exits non-zero and the rest waits for the next instance",
                    \.shutdownTimeout, atLeast: 1),
            text("log-level", "trace, debug, info, notice, warning, error or critical", \.logLevel) { text throws(ServeConfiguration.Invalid) in
                guard let level = Logger.Level(rawValue: text) else { throw .init("--log-level must be one of trace, debug, info, notice, warning, error, critical, got '\(text)'") }
                return level
            } render: { $0.rawValue },
        ]
    }

    // MARK: Kinds of setting

    static func text<Value>(
        _ flag: String, _ help: String, _ field: WritableKeyPath<ServeConfiguration, Value>,
        parse: @escaping (String) throws(ServeConfiguration.Invalid) -> Value, render: @escaping (Value) -> String?
    ) -> ServeSetting {
        ServeSetting(
            flag: flag, help: help,
            apply: { text, configuration throws(ServeConfiguration.Invalid) in configuration[keyPath: field] = try parse(text) },
            render: { render($0[keyPath: field]) })
    }

    static func integer(_ flag: String, _ help: String, _ field: WritableKeyPath<ServeConfiguration, Int>, atLeast minimum: Int) -> ServeSetting {
        text(flag, help, field) { text throws(ServeConfiguration.Invalid) in try number(flag, text, atLeast: minimum) } render: { String($0) }
    }

    static func integer32(_ flag: String, _ help: String, _ field: WritableKeyPath<ServeConfiguration, Int32>, atLeast minimum: Int) -> ServeSetting {
        text(flag, help, field) { text throws(ServeConfiguration.Invalid) in
            guard let narrow = Int32(exactly: try number(flag, text, atLeast: minimum)) else { throw .init("--\(flag) is too large: \(text)") }
            return narrow
        } render: { String($0) }
    }

    static func boolean(_ flag: String, _ help: String, _ field: WritableKeyPath<ServeConfiguration, Bool>) -> ServeSetting {
        text(flag, help, field) { text throws(ServeConfiguration.Invalid) in
            switch text.lowercased() {
            case "true", "yes", "1": return true
            case "false", "no", "0": return false
            default: throw .init("--\(flag) must be true or false, got '\(text)'")
            }
        } render: { String($0) }
    }

    static func seconds(_ flag: String, _ help: String, _ field: WritableKeyPath<ServeConfiguration, Duration>, atLeast minimum: Int) -> ServeSetting {
        text(flag, help, field) { text throws(ServeConfiguration.Invalid) in .seconds(try number(flag, text, atLeast: minimum)) } render: {
            String($0.components.seconds)
        }
    }

    static func milliseconds(_ flag: String, _ help: String, _ field: WritableKeyPath<ServeConfiguration, Duration>,
                             atLeast minimum: Int = 0) -> ServeSetting {
        text(flag, help, field) { text throws(ServeConfiguration.Invalid) in .milliseconds(try number(flag, text, atLeast: minimum)) } render: {
            String(Int($0.milliseconds))
        }
    }

    /// Seconds, 0 meaning never (nil).
    static func secondsOrNever(_ flag: String, _ help: String, _ field: WritableKeyPath<ServeConfiguration, Duration?>) -> ServeSetting {
        text(flag, help, field) { text throws(ServeConfiguration.Invalid) in
            let seconds = try number(flag, text, atLeast: 0)
            return seconds == 0 ? nil : .seconds(seconds)
        } render: { String($0?.components.seconds ?? 0) }
    }

    /// A count, 0 meaning never (nil).
    static func countOrNever(_ flag: String, _ help: String, _ field: WritableKeyPath<ServeConfiguration, Int?>) -> ServeSetting {
        text(flag, help, field) { text throws(ServeConfiguration.Invalid) in
            let count = try number(flag, text, atLeast: 0)
            return count == 0 ? nil : count
        } render: { String($0 ?? 0) }
    }

    static func number(_ flag: String, _ text: String, atLeast minimum: Int) throws(ServeConfiguration.Invalid) -> Int {
        guard let value = Int(text) else { throw .init("--\(flag) must be an integer, got '\(text)'") }
        guard value >= minimum else { throw .init("--\(flag) must be \(minimum) or more, got \(value)") }
        return value
    }

    // MARK: Documentation

    /// The settings as `--help` lists them: flag, variable, default, meaning.
    public static var helpText: String {
        all.map { setting in
            "--\(setting.flag) <value>\n    \(setting.help).\n    env \(setting.environmentName); default \(setting.defaultText)"
        }.joined(separator: "\n") + """

            --kafka <name=value>  (repeatable)
                Any librdkafka property, for every client serve makes; or \(ServeConfiguration.kafkaPrefix)<NAME> (dots as underscores).
            """
    }

    /// The settings as docs/operations.md's table (a test checks that the document holds exactly this).
    public static var markdownTable: String {
        (["| flag | environment | default | meaning |", "|---|---|---|---|"] + all.map { setting in
            "| `--\(setting.flag)` | `\(setting.environmentName)` | \(setting.defaultMarkdown) | \(setting.help) |"
        } + ["| `--kafka name=value` | `\(ServeConfiguration.kafkaPrefix)<NAME>` | none | any librdkafka property, for every client serve makes (dots as underscores in the variable) |"])
            .joined(separator: "\n")
    }
}
