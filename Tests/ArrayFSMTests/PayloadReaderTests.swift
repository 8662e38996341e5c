@testable import ArrayFSM
import Foundation
import Testing

/// Distributor-id maps and task ids are read ahead of `Codable` only in large messages: padding a
/// message with JSON whitespace sends the same command down the read-ahead path, and its decoding
/// must be exactly what the `Codable` path makes of the unpadded message.
@Suite struct PayloadReaderTests {
    /// What a decoding came to, comparable across the two paths.
    enum Decoded: Equatable {
        case command(arrayID: Int64, ids: [Int64: String], byStep: [Int32: String]?, stdout: String?, stderr: String?)
        case record(arrayID: Int64, taskIDs: [Int64], resources: Int64, run: Int64)
        case rejected(String)
        case undecodable(String)
    }

    func decode(_ text: String) -> Decoded {
        do {
            let command = try CommandDecoder().decode(Data(text.utf8))
            if let op = command.operation as? RecordArrayBatchNum {
                return .record(arrayID: op.arrayID, taskIDs: op.taskIDs, resources: op.taskResourcesID, run: op.workflowRunID)
            }
            guard let op = command.operation as? LogArrayDistributorID else { return .rejected("not a distributor command") }
            return .command(arrayID: op.arrayID, ids: op.distributorIDs, byStep: op.byStep?.distributorIDs, stdout: op.stdout, stderr: op.stderr)
        } catch let error as CommandDecoder.Rejected {
            return .rejected(error.error.description)
        } catch let error as CommandDecoder.Undecodable {
            return .undecodable(error.code)
        } catch {
            return .undecodable("\(error)")
        }
    }

    /// `payload` inside a distributor command, decoded as it is and padded past the read-ahead size.
    func bothWays(_ payload: String, envelope: String = #""command_id": "c", "type": "log_array_distributor_id""#) -> (plain: Decoded, padded: Decoded) {
        let plain = "{\(envelope), \"payload\": \(payload)}"
        let padded = "{\(envelope),\(String(repeating: " ", count: 5000))\"payload\": \(payload)}"
        return (decode(plain), decode(padded))
    }

    @Test(arguments: [
        #"{"array_id": 7, "distributor_ids": {"11": "4242_0", "12": "4242_1"}}"#,
        "{ \"array_id\" : 7 ,\n\t\"distributor_ids\" :\r\n { \"11\" : \"a\" ,\"12\":\"b\" } }",
        #"{"array_id": 7, "distributor_ids": {"11": "a\"b", "12": "\u00e9\\", "13": "\/"}}"#,
        #"{"array_id": 7, "distributor_ids": {"11": "é✓ 𝄞", "12": ""}}"#,
        #"{"array_id": 7, "distributor_ids": {"05": "a"}}"#,
        #"{"array_id": 7, "distributor_ids": {"-5": "a"}}"#,
        #"{"array_id": 7, "distributor_ids": {"0": "a"}}"#,
        #"{"array_id": 7, "distributor_ids": {"\u0035": "a"}}"#,
        #"{"array_id": 7, "distributor_ids": {"99999999999999999999": "a"}}"#,
        #"{"array_id": 7, "distributor_ids": {"11": "a", "11": "b"}}"#,
        #"{"array_id": 7, "distributor_ids": {"11": 5}}"#,
        #"{"array_id": 7, "distributor_ids": {"11": null}}"#,
        #"{"array_id": 7, "distributor_ids": null}"#,
        #"{"array_id": 7, "distributor_ids": {}}"#,
        #"{"array_id": 7, "distributor_ids": ["11", "a"]}"#,
        #"{"array_id": 7, "distributor_ids": {"11": "a"}, "distributor_ids": {"12": "b"}}"#,
        #"{"stdout": "/o/{distributor_id}}]\"x", "nested": {"a": [1, {"b": "}"}], "t": true}, "array_id": 7, "distributor_ids": {"11": "a"}}"#,
        #"{"array_id": 7, "batch_number": 1, "distributor_ids_by_step": {"0": "a"}, "distributor_ids": {"11": "b"}}"#,
        #"{"array_id": 7, "distributor_ids": {"11": "a"}"#,
        #"{"array_id": 7, "distributor_ids": {"11": "a",}}"#,
        #"{"array_id": "7", "distributor_ids": {"11": "a"}}"#,
    ])
    func readAheadDecodesAsCodableDoes(_ payload: String) {
        let (plain, padded) = bothWays(payload)
        #expect(plain == padded)
    }

    @Test(arguments: [
        #"{"array_id": 7, "task_ids": [11, 12, 13], "task_resources_id": 1, "workflow_run_id": 2}"#,
        "{ \"task_ids\" :\n[ 11 ,12\t] , \"array_id\": 7, \"task_resources_id\": 1, \"workflow_run_id\": 2 }",
        #"{"array_id": 7, "task_ids": [], "task_resources_id": 1, "workflow_run_id": 2}"#,
        #"{"array_id": 7, "task_ids": [0, 11], "task_resources_id": 1, "workflow_run_id": 2}"#,
        #"{"array_id": 7, "task_ids": [-5, 12], "task_resources_id": 1, "workflow_run_id": 2}"#,
        #"{"array_id": 7, "task_ids": [11.0, 1e2], "task_resources_id": 1, "workflow_run_id": 2}"#,
        #"{"array_id": 7, "task_ids": [99999999999999999999], "task_resources_id": 1, "workflow_run_id": 2}"#,
        #"{"array_id": 7, "task_ids": ["11"], "task_resources_id": 1, "workflow_run_id": 2}"#,
        #"{"array_id": 7, "task_ids": [11, null], "task_resources_id": 1, "workflow_run_id": 2}"#,
        #"{"array_id": 7, "task_ids": [11,], "task_resources_id": 1, "workflow_run_id": 2}"#,
        #"{"array_id": 7, "task_ids": [11, 11, 12], "task_resources_id": 1, "workflow_run_id": 2}"#,
        #"{"array_id": 7, "task_ids": [11], "task_ids": [12], "task_resources_id": 1, "workflow_run_id": 2}"#,
        #"{"array_id": 7, "task_ids": {"11": 1}, "task_resources_id": 1, "workflow_run_id": 2}"#,
        #"{"array_id": 7, "task_ids": [11], "workflow_run_id": 2}"#,
        #"{"task_ids": [11], "task_resources_id": 1, "workflow_run_id": 2}"#,
        #"{"array_id": 7, "task_ids": [11, 12]"#,
    ])
    func taskIDsReadAheadDecodeAsCodableDoes(_ payload: String) {
        let (plain, padded) = bothWays(payload, envelope: #""command_id": "c", "type": "record_array_batch_num""#)
        #expect(plain == padded)
    }

    @Test func aLargeTaskIDListIsReadWhole() throws {
        let ids = (1...1000).map { Int64(5_000_000 + $0) }
        // Keys sorted, as JSONSerialization's .sortedKeys writes them: the type comes after the payload.
        let text = #"{"command_id":"c","payload":{"array_id":3,"task_ids":"#
            + "[\(ids.map(String.init).joined(separator: ","))]" + #","task_resources_id":1,"workflow_run_id":2},"type":"record_array_batch_num"}"#
        guard case .taskIDs(let read, _) = PayloadReader.readAhead(Array(text.utf8)) else {
            Issue.record("not read")
            return
        }
        #expect(read == ids)
        #expect(decode(text) == .record(arrayID: 3, taskIDs: ids, resources: 1, run: 2))
    }

    @Test func envelopesAroundTheMapDecodeAsCodableDoes() {
        let map = #"{"array_id": 7, "distributor_ids": {"11": "a"}}"#
        for envelope in [
            #""type": "log_array_distributor_id", "command_id": "c""#,
            #""command_id": "c", "type": "log_array_distributor_id", "payload": {"array_id": 1, "distributor_ids": {"12": "x"}}"#,
            #""command_id": "c", "type": "add_array", "note": "\"log_array_distributor_id\"""#,
            #""command_id": "c", "type": "log_array_distributor_id", "distributor_ids": {"99": "top level"}"#,
        ] {
            let (plain, padded) = bothWays(map, envelope: envelope)
            #expect(plain == padded, "envelope \(envelope)")
        }
    }

    @Test func aLargePlainMapIsReadWhole() {
        var entries: [String] = []
        var expected: [Int64: String] = [:]
        for id in 1_000_000..<1_001_000 {
            entries.append("\"\(id)\": \"4242_\(id % 1000)\"")
            expected[Int64(id)] = "4242_\(id % 1000)"
        }
        let text = #"{"command_id": "c", "type": "log_array_distributor_id", "payload": {"array_id": 3, "distributor_ids": {"#
            + entries.joined(separator: ", ") + "}}}"
        #expect(decode(text) == .command(arrayID: 3, ids: expected, byStep: nil, stdout: nil, stderr: nil))
    }

    @Test func readsOnlyPlainMapsItself() {
        func read(_ payload: String) -> [Int64: String]? {
            guard case .distributorIDs(let map, _) = PayloadReader.readAhead(
                Array(#"{"command_id":"c","type":"log_array_distributor_id","payload":\#(payload)}"#.utf8))
            else { return nil }
            return map
        }
        #expect(read(#"{"array_id":1,"distributor_ids":{"11":"a","12":"b"}}"#) == [11: "a", 12: "b"])
        #expect(read(#"{"x":[{"y":"}\""}],"distributor_ids":{ "11" : "a" }}"#) == [11: "a"])
        #expect(read(#"{"array_id":1,"distributor_ids":{"11":"a\"b"}}"#) == nil, "escapes are Codable's")
        #expect(read(#"{"array_id":1,"distributor_ids":{"011":"a"}}"#) == nil, "so are keys that are not canonical")
        #expect(read(#"{"array_id":1,"distributor_ids":{"11":"a","11":"b"}}"#) == nil, "and repeated ones")
        #expect(read(#"{"array_id":1}"#) == nil)
    }

    @Test func theMessageCodableParsesIsTheOriginalWithTheMapAsAnEmptyObject() throws {
        let text = #"{"command_id":"c","type":"log_array_distributor_id","payload":{"array_id":1,"distributor_ids": {"11":"a", "12":"b"} ,"stdout":"x"}}"#
        let bytes = Array(text.utf8)
        guard case .distributorIDs(let map, let range) = PayloadReader.readAhead(bytes) else {
            Issue.record("not read")
            return
        }
        #expect(map == [11: "a", 12: "b"])
        #expect(String(decoding: bytes[range], as: UTF8.self) == #"{"11":"a", "12":"b"}"#)
        #expect(String(decoding: PayloadReader.spliced(bytes, removing: range, with: "{}"), as: UTF8.self)
                == #"{"command_id":"c","type":"log_array_distributor_id","payload":{"array_id":1,"distributor_ids": {} ,"stdout":"x"}}"#)
    }
}
