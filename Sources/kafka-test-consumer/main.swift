// A consumer-group member for the consumer-crash test: joins GROUP on TOPIC, prints what it
// is assigned and every message it reads ("MSG partition offset"), and never stores or commits
// an offset — so everything it read must be redelivered to the group after it is killed.
// Usage: kafka-test-consumer BOOTSTRAP GROUP TOPIC
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Kafka

let arguments = CommandLine.arguments
guard arguments.count == 4 else {
    printError("usage: kafka-test-consumer BOOTSTRAP GROUP TOPIC")
    exit(2)
}

let consumer = try KafkaConsumer(configuration: KafkaConfiguration(
    bootstrapServers: arguments[1], groupID: arguments[2],
    properties: ["session.timeout.ms": "6000", "heartbeat.interval.ms": "500", "max.poll.interval.ms": "6000"]
))
try consumer.subscribe(topics: [arguments[3]])
while true {
    let result = try await consumer.poll(maxMessages: 100, timeout: .milliseconds(200))
    for event in result.rebalanceEvents {
        switch event {
        case .assigned(let partitions): print("ASSIGNED \(partitions.map { String($0.partition) }.joined(separator: ","))")
        case .revoked(let partitions): print("REVOKED \(partitions.map { String($0.partition) }.joined(separator: ","))")
        case .lost(let partitions): print("LOST \(partitions.map { String($0.partition) }.joined(separator: ","))")
        }
    }
    for message in result.messages { print("MSG \(message.partition) \(message.offset)") }
    fflush(nil)
}

/// Writes one line to standard error (the C `stderr` global isn't concurrency-safe in Swift 6).
func printError(_ text: String) {
    var line = text + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}
