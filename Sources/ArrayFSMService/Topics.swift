/// The topic names the service reads and writes (contract defaults; each configurable).
public struct Topics: Sendable, Hashable {
    public var commands = "arrayfsm.commands"
    public var results = "arrayfsm.results"
    public var transitions = "arrayfsm.transitions"
    public var deadLetters = "arrayfsm.dlq"

    public init() {}

    public var all: [String] { [commands, results, transitions, deadLetters] }
}
