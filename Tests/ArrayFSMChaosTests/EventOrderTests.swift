@testable import ArrayFSMChaos
import Foundation
import Testing

/// The oracle's per-key order check, on ledgers built by hand.
struct EventOrderTests {
    func event(_ id: String) -> [UInt8] { Array(#"{"event_id": "\#(id)", "command_id": "c"}"#.utf8) }

    @Test func firstOccurrencesMustFollowCommitOrderPerKeyRepeatsAndOtherKeysAside() {
        var clean = EventLedger()
        for id in ["a1", "a2", "a3"] { clean.addInOrder(topic: "t", key: Array("a".utf8), event(id)) }
        for id in ["b1", "b2"] { clean.addInOrder(topic: "t", key: Array("b".utf8), event(id)) }

        var fine = EventLedger()
        // Another key interleaved, a re-published copy after the first occurrences, b2 missing.
        for (key, id) in [("a", "a1"), ("b", "b1"), ("a", "a2"), ("a", "a1"), ("a", "a3"), ("a", "a2")] {
            fine.addInOrder(topic: "t", key: Array(key.utf8), event(id))
        }
        #expect(clean.orderViolations(in: fine).isEmpty)

        var swapped = EventLedger()
        // a3's round was delivered before a2's; a2 came only with the re-publishing.
        for id in ["a1", "a3", "a2", "a3"] { swapped.addInOrder(topic: "t", key: Array("a".utf8), event(id)) }
        for id in ["b1", "b2"] { swapped.addInOrder(topic: "t", key: Array("b".utf8), event(id)) }
        #expect(clean.orderViolations(in: swapped) == ["key t a: event a3 published before a2, the clean run committed them the other way round"])
    }
}
