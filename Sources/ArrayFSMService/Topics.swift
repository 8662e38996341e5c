/// The topic names the service reads and writes (contract defaults; each configurable), and the
/// reply topics it may publish to.
public struct Topics: Sendable, Hashable {
    public var commands = "arrayfsm.commands"
    public var results = "arrayfsm.results"
    public var transitions = "arrayfsm.transitions"
    public var deadLetters = "arrayfsm.dlq"
    /// A command's `reply_to` must start with this (contract: "Reply topics"): on a shared cluster
    /// serve writes only where its operator let it.
    public var replyPrefix = "arrayfsm.replies."

    public init() {}

    public var all: [String] { [commands, results, transitions, deadLetters] }

    /// Whether serve may publish a result to `topic` on a command's behalf: under the reply prefix,
    /// and none of serve's own topics (a reply into the commands topic would be read back as a
    /// repeat and answered again, forever).
    public func allowsReply(to topic: String) -> Bool {
        !replyPrefix.isEmpty && topic.hasPrefix(replyPrefix) && topic.utf8.count > replyPrefix.utf8.count && !all.contains(topic)
    }

    /// Why this set of topics cannot be served, or nil: serve never publishes to the topic it reads.
    public var misconfiguration: String? {
        for (name, topic) in [("results", results), ("transitions", transitions), ("dead-letter", deadLetters)] where topic == commands {
            return "the \(name) topic is the commands topic ('\(commands)'): serve would read its own events back as commands"
        }
        if !replyPrefix.isEmpty, commands.hasPrefix(replyPrefix) {
            return "the commands topic '\(commands)' starts with the reply-topic prefix '\(replyPrefix)'"
        }
        return nil
    }
}
