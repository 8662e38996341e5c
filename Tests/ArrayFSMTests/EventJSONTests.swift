@testable import ArrayFSM
import Foundation
import Testing

/// The events' hand-written JSON says exactly what their `Encodable` conformances say.
struct EventJSONTests {
    /// Parsed into Foundation values: key order and number spelling aside, the same JSON.
    func parsed(_ bytes: [UInt8]) throws -> NSObject {
        try #require(JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]) as? NSObject)
    }

    func encoded<Event: Encodable>(_ event: Event) throws -> NSObject {
        try parsed(referenceBytes(event))
    }

    /// What `JSONEncoder` writes with sorted keys and unescaped slashes.
    func referenceBytes<Event: Encodable>(_ event: Event) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(event))
    }

    /// Command ids are any text of up to 256 bytes: quotes, backslashes, control characters,
    /// slashes, non-ASCII.
    static let awkwardIDs = ["plain-1", "quote\"back\\slash/", "tab\tnew\nline\r\u{1}\u{1F}", "ünïcødé ✓ 🚀", ""]

    @Test(arguments: awkwardIDs)
    func transitionEvents(_ commandID: String) throws {
        for event in [
            TransitionEvent(eventID: commandID + ":t0", commandID: commandID, arrayID: 7, batchNumber: 3, entity: "task_instance",
                            from: nil, to: "Q", ids: [1, 2, Int64.max, -5], count: 4, at: "2026-12-01T03:00:00.123Z"),
            TransitionEvent(eventID: commandID + ":t1:p2", commandID: commandID, arrayID: 7, batchNumber: nil, entity: "task",
                            from: "G", to: "Q", ids: [], count: 0, at: "2026-12-01T03:00:00.123Z", part: 2, parts: 3),
        ] {
            #expect(try parsed(event.jsonBytes) == encoded(event))
            #expect(String(decoding: event.jsonBytes, as: UTF8.self) == String(decoding: try referenceBytes(event), as: UTF8.self))
        }
    }

    @Test(arguments: awkwardIDs)
    func resultEvents(_ commandID: String) throws {
        let payloads: [ResultPayload?] = [
            nil,
            .recordArrayBatchNum(batches: [.init(batchNumber: 4, taskInstanceIDs: [10, 11]), .init(batchNumber: 5, taskInstanceIDs: [12])],
                                 tasksByStatus: ["Q": [1, 2, 3], "D": [9], "G": []]),
            .recordArrayBatchNum(batches: [], tasksByStatus: [:]),
            .batchTransition(taskInstances: 1000, tasks: 998),
            .logArrayDistributorID(taskInstances: 3, skipped: [4, 5]),
            .logArrayDistributorID(taskInstances: 3, skipped: []),
            .maxConcurrentlyRunning(.init(arrayID: 8, maxConcurrentlyRunning: 10_000)),
            .addArray(.init(arrayID: 12, created: true)),
            .taskInstanceBatches([
                .init(arrayID: 3, arrayName: "a \"quoted\" name", batchNumber: 2, taskResourcesID: 7, taskInstanceIDs: [5, 6]),
                .init(arrayID: 4, arrayName: "", batchNumber: 1, taskResourcesID: nil, taskInstanceIDs: [9]),
            ]),
        ]
        for payload in payloads {
            let event = ResultEvent(
                eventID: commandID + ":result", commandID: commandID, type: "record_array_batch_num", status: payload == nil ? .rejected : .ok,
                result: payload, error: payload == nil ? .init(code: "invalid_argument", message: "bad \"\(commandID)\"") : nil,
                processedAt: "2026-12-01T03:00:00.123Z", durationMS: 1.234567, part: payload == nil ? nil : 1, parts: payload == nil ? nil : 2)
            #expect(try parsed(event.jsonBytes) == encoded(event))
            #expect(String(decoding: event.jsonBytes, as: UTF8.self) == String(decoding: try referenceBytes(event), as: UTF8.self))
        }
    }

    /// Durations are doubles: every finite one is valid JSON with its value; what JSON cannot say is null.
    @Test(arguments: [0, -0.0, 1.234567, 1e-5, 5e-324, 1e16, 123456789.125, 42])
    func doubles(_ number: Double) throws {
        var json = JSONBytes()
        json.array { $0.double(number) }
        let parsed = try #require(JSONSerialization.jsonObject(with: Data(json.bytes)) as? [NSNumber])
        #expect(parsed.map(\.doubleValue) == [number])
    }

    @Test func notANumberAndInfinityBecomeNull() {
        var json = JSONBytes()
        json.array { list in
            list.double(.nan)
            list.double(.infinity)
            list.double(-.infinity)
        }
        #expect(String(decoding: json.bytes, as: UTF8.self) == "[null,null,null]")
    }

    @Test func numbersAtTheEdges() throws {
        var json = JSONBytes()
        json.integers([0, -1, 9, 10, Int64.min, Int64.max, 1_000_000_007])
        #expect(String(decoding: json.bytes, as: UTF8.self) == "[0,-1,9,10,-9223372036854775808,9223372036854775807,1000000007]")
    }

    @Test func taskInstanceBatchesSplitKeepsEveryIDWithItsBatch() {
        let batches: [InstantiateTaskInstances.Batch] = [
            .init(arrayID: 3, arrayName: "a", batchNumber: 2, taskResourcesID: 7, taskInstanceIDs: [1, 2, 3]),
            .init(arrayID: 4, arrayName: "b", batchNumber: 1, taskResourcesID: nil, taskInstanceIDs: [4, 5]),
        ]
        let parts = ResultPayload.taskInstanceBatches(batches).split(maxIDs: 2)
        var ids: [String: [Int64]] = [:]
        for case .taskInstanceBatches(let part) in parts {
            #expect(part.reduce(0) { $0 + $1.taskInstanceIDs.count } <= 2)
            for batch in part { ids["\(batch.arrayID)/\(batch.batchNumber)", default: []] += batch.taskInstanceIDs }
        }
        #expect(parts.count == 3)
        #expect(ids == ["3/2": [1, 2, 3], "4/1": [4, 5]])
    }
}
