import ArrayFSMService
import Testing

/// Which topics serve may reply to, and which topic sets it refuses to serve.
struct TopicsTests {
    @Test func repliesGoOnlyUnderThePrefixAndNeverToServesOwnTopics() {
        var topics = Topics()
        #expect(topics.allowsReply(to: "arrayfsm.replies.scheduler-7"))
        for refused in ["arrayfsm.replies.", "arrayfsm.commands", "arrayfsm.results", "arrayfsm.transitions", "arrayfsm.dlq", "team-b.inbox"] {
            #expect(!topics.allowsReply(to: refused), "\(refused)")
        }
        topics.results = "arrayfsm.replies.results"
        #expect(!topics.allowsReply(to: "arrayfsm.replies.results"), "an own topic under the prefix is still refused")
        topics.replyPrefix = ""
        #expect(!topics.allowsReply(to: "arrayfsm.replies.scheduler-7"), "an empty prefix turns replies off")
    }

    @Test func aTopicSetThatWouldReadItsOwnEventsIsRefused() {
        #expect(Topics().misconfiguration == nil)
        var loop = Topics()
        loop.results = loop.commands
        #expect(loop.misconfiguration?.contains("results topic is the commands topic") == true)
        var underPrefix = Topics()
        underPrefix.commands = "arrayfsm.replies.commands"
        #expect(underPrefix.misconfiguration != nil)
    }
}
