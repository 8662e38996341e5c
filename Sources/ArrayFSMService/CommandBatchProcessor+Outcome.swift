// ArrayFSMService — the processor: command batches from Kafka, one transaction each, the outbox
// and its relay, readiness and metrics. Uses ArrayFSM for the domain and Kafka for the wire.
import ArrayFSM

extension CommandBatchProcessor {
    /// What a batch did, for metrics and logs.
    public struct Outcome: Sendable {
        /// Each command's type and what became of it, in batch order.
        public var commands: [CommandCount] = []
        /// Rows moved, per kind of transition.
        public var transitions: [TransitionKind: Int] = [:]
        public var outboxMessages = 0
        /// Whether the batch had to be applied one command at a time.
        public var fellBackToSingles = false
        /// Where the batch's time went (for the debug log): decoding, the operations' statements,
        /// storing answers and events; the rest of the batch's time is claiming ids, BEGIN and COMMIT.
        public var timings = Timings()
    }

    /// What became of one command (also the status stored with a processed command).
    public enum CommandStatus: String, Sendable, Hashable {
        case ok
        case rejected
        /// A repeat, answered with the original's result.
        case duplicate
        /// Not a command: dead-lettered.
        case deadLetter = "dead_letter"
    }

    /// One command as metrics count it.
    public struct CommandCount: Sendable, Hashable {
        /// The command's type; nil for a type the server does not know (or a message without one).
        public var type: CommandType?
        public var status: CommandStatus

        public init(type: CommandType?, status: CommandStatus) {
            self.type = type
            self.status = status
        }

        /// Counts a command of the producer-chosen `type`: an unknown one counts as unknown, so a
        /// producer cannot add series to `/metrics`.
        init(_ type: String, _ status: CommandStatus) {
            self.init(type: CommandType(rawValue: type), status: status)
        }

        /// The metric label: the type's name, or `unknown`.
        public var typeLabel: String { type?.rawValue ?? "unknown" }
    }

    /// Rows of one entity moved from one status (nil: created) to another.
    public struct TransitionKind: Sendable, Hashable, CustomStringConvertible {
        public var entity: TransitionGroup.Entity
        public var from: String?
        public var to: String

        public init(entity: TransitionGroup.Entity, from: String?, to: String) {
            self.entity = entity
            self.from = from
            self.to = to
        }

        init(_ group: TransitionGroup) {
            self.init(entity: group.entity, from: group.from, to: group.to)
        }

        /// `task_instance:Q->I` (`new` for rows created).
        public var description: String { "\(entity.rawValue):\(from ?? "new")->\(to)" }
    }

    /// How long a batch's parts took. All zero when the batch fell back to one transaction per
    /// command (each of those has its own).
    public struct Timings: Sendable {
        /// Decoding the messages, before the transaction (the database waits for it).
        public var decode = Duration.zero
        /// Claiming ids aside, everything the commands did: their statements, and building their answers.
        public var operations = Duration.zero
        /// Writing the processed-commands rows and the outbox.
        public var store = Duration.zero
    }
}
