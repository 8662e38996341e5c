import ArrayFSM
import Testing

@Suite struct IDRunsTests {
    @Test func consecutiveIdsMakeOneRunEachGapStartsAnother() {
        let runs = IDRuns([12, 3, 5, 4, 10, 11, 3, 20])
        #expect(runs.lows == [3, 10, 20])
        #expect(runs.highs == [5, 12, 20])
        #expect(runs.idCount == 7, "repeats count once")
    }

    @Test func edgeCases() {
        #expect(IDRuns([Int64]()).isEmpty)
        let top = IDRuns([Int64.max - 1, .max, 1])
        #expect(top.lows == [1, .max - 1])
        #expect(top.highs == [1, .max])
        let single = IDRuns([Int64(7)])
        #expect(single.lows == [7] && single.highs == [7])
    }
}
