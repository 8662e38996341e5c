// ArrayFSMChaos — the fault suite: serve processes under kills, restarts, broker and database
// faults and hostile input, checked by an oracle against a clean run. Built on ArrayFSMTools.
import ArrayFSMLoad
import Foundation

/// Malformed and illegal command messages, each of which must be answered `rejected` or
/// dead-lettered, never crash a consumer or block its partition.
enum BadInput {
    /// Messages to mix into a workload. `arrays` are the workload's arrays (for "ids of another
    /// array"); `duplicateOf` are good records whose command ids get re-used with other payloads.
    static func messages(arrays: [LoadSpec.PlannedArray], duplicateOf good: [TopicDumpRecord], topic: String) -> [TopicDumpRecord] {
        var records: [TopicDumpRecord] = []
        func add(_ value: [UInt8]?, key: String? = nil) {
            records.append(TopicDumpRecord(topic: topic, partition: -1, offset: -1, timestamp: nil,
                                           key: key.map { Array($0.utf8) }, payload: value, headers: []))
        }
        func command(_ id: String, _ type: String, _ payload: String, key: String? = nil) {
            add(Array(#"{"command_id":"\#(id)","type":"\#(type)","payload":\#(payload)}"#.utf8), key: key)
        }
        let first = arrays[0], second = arrays[arrays.count > 1 ? 1 : 0]
        add([0xFF, 0xFE, 0x7B, 0x22])                                     // invalid UTF-8
        add(Array("this is not json".utf8))                                // not JSON
        add(Array("[1, 2, 3]".utf8))                                       // a JSON array
        add(Array(#"{"type":"get_array_max_concurrently_running","payload":{"array_id":1}}"#.utf8))  // no command_id
        add(nil)                                                           // no value at all
        command(String(repeating: "x", count: 300), "get_array_max_concurrently_running", #"{"array_id":1}"#)  // oversized id
        command("chaos-unknown-type", "reticulate_splines", "{}")
        command("chaos-wrong-field-type", "get_array_max_concurrently_running", #"{"array_id":"seven"}"#)
        command("chaos-negative-id", "get_array_max_concurrently_running", #"{"array_id":-5}"#)
        command("chaos-huge-id", "get_array_max_concurrently_running", #"{"array_id":100000000000000000000000}"#)
        command("chaos-other-array", "record_array_batch_num",
                #"{"array_id":\#(first.arrayID),"task_ids":[\#(second.taskIDs.lowerBound)],"task_resources_id":1,"workflow_run_id":1}"#,
                key: String(first.arrayID))
        command("chaos-no-such-batch", "transition_array_to_launched",
                #"{"array_id":\#(first.arrayID),"batch_number":9999,"next_report_increment":279}"#, key: String(first.arrayID))
        command("chaos-nan-increment", "transition_array_to_launched",
                #"{"array_id":\#(first.arrayID),"batch_number":1,"next_report_increment":NaN}"#, key: String(first.arrayID))
        command("chaos-negative-increment", "transition_array_to_launched",
                #"{"array_id":\#(first.arrayID),"batch_number":9998,"next_report_increment":-1}"#, key: String(first.arrayID))
        // 10 MB: over the 1 MiB command limit, refused before it is parsed.
        add(Array(#"{"command_id":"chaos-10mb","type":"add_array","payload":{"pad":""#.utf8)
            + [UInt8](repeating: 0x61, count: 10 << 20) + Array(#""}}"#.utf8))
        // Duplicate command ids with other payloads: same key as the original, so they come after it
        // in its partition, and must get the original's answer and change nothing.
        for original in good {
            guard let payload = original.payload,
                  let object = try? JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any],
                  let id = object["command_id"] as? String else { continue }
            command(id, "get_array_max_concurrently_running", #"{"array_id":\#(first.arrayID)}"#,
                    key: original.key.map { String(decoding: $0, as: UTF8.self) })
        }
        return records
    }
}
