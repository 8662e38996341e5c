// ArrayFSMTools, bench-serve: one timed phase through Kafka: send through the client, await every
// answer, time its stages.
import ArrayFSMClient
import Foundation
import Logging

extension ServeBenchmark {
    /// Sends the commands through `client` (all at once, or `rate` per second) and awaits every
    /// answer; latency is from the send to the answer read.
    func phase(_ client: ArrayFSMClient, _ name: String, rows: Int, commands: [ArrayCommand], rate: Int? = nil) async throws -> Phase {
        let start = ContinuousClock.now
        // The wall clock of each send: serve's processed_at and the result's Kafka timestamp use it.
        var sent: [(pending: PendingAnswer, wall: Double)] = []
        sent.reserveCapacity(commands.count)
        let perTick = rate.map { max(1, $0 / 100) } ?? commands.count
        var index = 0
        while index < commands.count {
            let tickStart = ContinuousClock.now
            let slice = Array(commands[index..<min(index + perTick, commands.count)])
            let wall = Date().timeIntervalSince1970 * 1000
            sent += try await client.submit(slice).map { ($0, wall) }
            index += slice.count
            let elapsed = ContinuousClock.now - tickStart
            if rate != nil, elapsed < .milliseconds(10) { try await Task.sleep(for: .milliseconds(10) - elapsed) }
        }
        var latencies: [Double] = []
        var stamps: [Stamps] = []
        var unanswered = 0
        var lastReceived = start
        for (pending, sentWall) in sent {
            guard let answer = try? await pending.answer() else {
                unanswered += 1
                continue
            }
            latencies.append(answer.roundTrip.seconds * 1000)
            lastReceived = max(lastReceived, answer.receivedAt)
            if let relayed = answer.publishedAtMilliseconds, let applied = answer.processedAt {
                stamps.append(Stamps(sent: sentWall, applied: applied.timeIntervalSince1970 * 1000, relayed: Double(relayed),
                                     read: sentWall + answer.roundTrip.seconds * 1000))
            }
        }
        let seconds = (lastReceived - start).seconds
        guard unanswered == 0 else {
            throw ChildProcess.Failure(description: "\(name): \(unanswered) of \(commands.count) commands were not answered")
        }
        func quantile(_ values: [Double], _ q: Double) -> Double {
            values.isEmpty ? 0 : values.sorted()[min(values.count - 1, Int(Double(values.count) * q))]
        }
        func median(_ values: [Double]) -> Double { quantile(values, 0.5) }
        func p99(_ values: [Double]) -> Double { quantile(values, 0.99) }
        var phase = Phase(name: name, commands: commands.count, rows: rows, seconds: seconds, latencies: latencies.sorted())
        if !stamps.isEmpty {
            phase.stages = (median(stamps.map { $0.applied - $0.sent }), median(stamps.map { $0.relayed - $0.applied }),
                            median(stamps.map { $0.read - $0.relayed }))
            phase.stagesP99 = (p99(stamps.map { $0.applied - $0.sent }), p99(stamps.map { $0.relayed - $0.applied }),
                               p99(stamps.map { $0.read - $0.relayed }))
            let firstSent = stamps.map(\.sent).min()!
            phase.span = (firstApplied: stamps.map(\.applied).min()! - firstSent, lastApplied: stamps.map(\.applied).max()! - firstSent,
                          lastRelayed: stamps.map(\.relayed).max()! - firstSent, lastRead: stamps.map(\.read).max()! - firstSent)
        }
        return phase
    }

    /// When one command was sent and its result applied (`processed_at`), relayed (the result's
    /// Kafka timestamp) and read: wall-clock milliseconds since 1970, the clock the first two share.
    struct Stamps {
        var sent: Double
        var applied: Double
        var relayed: Double
        var read: Double
    }
}
