import ArrayFSMService
import Testing

/// What serve's clients are configured with when the operator says nothing, and that the operator's word wins.
struct ServeConfigurationTests {
    @Test func theRelaySendsAtOnceUnlessTheOperatorSetsALinger() throws {
        let defaults = try ServeConfiguration(flags: [:], environment: [:])
        #expect(defaults.relayProducerProperties["linger.ms"] == "0")
        #expect(defaults.relayProducerProperties["enable.gapless.guarantee"] == "true")

        let fromEnvironment = try ServeConfiguration(flags: [:], environment: ["ARRAYFSM_KAFKA_LINGER_MS": "5"])
        #expect(fromEnvironment.relayProducerProperties["linger.ms"] == "5")
        let fromFlag = try ServeConfiguration(flags: [:], kafkaFlags: ["linger.ms=7"], environment: ["ARRAYFSM_KAFKA_LINGER_MS": "5"])
        #expect(fromFlag.relayProducerProperties["linger.ms"] == "7")
    }
}
