import ArrayFSM
import ArrayFSMTesting
import ArrayFSMTools
import Foundation
import Testing

@Suite struct ScaleBenchmarkTests {
    @Test(.timeLimit(.minutes(2)))
    func tinyRunHasEveryOperationAtEveryLevelAndSeedsTheLevelsRows() async throws {
        try await TestPostgres.withDatabase { db in
            let benchmark = ScaleBenchmark(levels: [0, 2_500], batches: [100, 300], repeats: 1, seedArraySize: 1_000)
            let report = try await benchmark.run(db, logger: TestPostgres.logger)
            #expect(report.levels.map(\.taskInstanceRows) == [0, 2_500])
            #expect(report.measurements.count == 2 * 2 * ScaleBenchmark.Operation.allCases.count)
            for level in [0, 2_500] {
                for batch in [100, 300] {
                    for operation in ScaleBenchmark.Operation.allCases {
                        let m = try #require(report.measurement(operation, batch: batch, level: level))
                        #expect(m.microsecondsPerTI > 0 && m.microsecondsPerTI.isFinite, "\(operation) \(batch) \(level)")
                    }
                }
            }
            // The seeded arrays are finished work, in batches of 1,000; the timed arrays were removed.
            let rows = try await db.client.query(
                """
                SELECT count(DISTINCT ti.array_id), count(*) FILTER (WHERE ti.status IN ('D', 'F')), max(ti.array_batch_num)
                FROM task_instance AS ti JOIN task AS t ON t.id = ti.task_id AND t.array_id = ti.array_id
                """)
            for try await (arrays, finished, lastBatch) in rows.decode((Int64, Int64, Int32).self) {
                #expect(arrays == 3)
                #expect(finished == 2_500)
                #expect(lastBatch == 1)
            }
            let description = report.description
            #expect(description.contains("distributor ids"))
            #expect(description.contains("2,500"))
            if ScalePlot.gnuplot() != nil {
                let png = FileManager.default.temporaryDirectory.appendingPathComponent("bench-scale-\(UUID().uuidString).png").path
                defer { try? FileManager.default.removeItem(atPath: png) }
                try ScalePlot(report: report).write(to: png)
                #expect(FileManager.default.fileExists(atPath: png))
            }
        }
    }
}
