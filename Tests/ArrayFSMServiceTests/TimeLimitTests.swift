@testable import ArrayFSMService
import Testing

/// `withinTimeLimit` answers "timed out" only when the limit passed: cancelling the timer of work
/// that finished used to end the timer's sleep early and resume with nil first, now and then —
/// a clean shutdown reported as "shutdown timed out after 30 s" seconds after it began.
@Suite struct TimeLimitTests {
    @Test func workThatFinishesInTimeIsNeverReportedTimedOut() async throws {
        var timedOut = 0
        for index in 0..<5000 {
            if try await withinTimeLimit(.seconds(30), { index }) == nil { timedOut += 1 }
        }
        #expect(timedOut == 0)
    }

    @Test func workPastTheLimitIsReportedTimedOut() async throws {
        let started = ContinuousClock.now
        // Work that would take a minute: the answer comes at the limit, not when the work ends (the
        // bound leaves room for a loaded 2-core machine, where the suite's other tests share the cores).
        #expect(try await withinTimeLimit(.milliseconds(100), { try await Task.sleep(for: .seconds(60)); return 1 }) == nil)
        #expect(ContinuousClock.now - started < .seconds(30))
    }
}
