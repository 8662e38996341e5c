// ArrayFSMTools — developer tools the CLI runs: benchmarks, throwaway PostgreSQL, brokers, child
// processes, a serve on a local broker. Never linked into the service itself.
import Foundation

/// Builds command envelopes as schedulers send them.
public enum CommandMessage {
    /// The JSON bytes of a command envelope.
    public static func json(_ type: String, id: String = UUID().uuidString, payload: [String: Any], replyTo: String? = nil) -> [UInt8] {
        var envelope: [String: Any] = ["command_id": id, "type": type, "version": 1, "payload": payload]
        if let replyTo { envelope["reply_to"] = replyTo }
        // Sorted keys: the same command always has the same bytes.
        return Array(try! JSONSerialization.data(withJSONObject: envelope, options: [.sortedKeys]))
    }

    /// The contract's key for a command about `arrayID`.
    public static func key(arrayID: Int64) -> [UInt8] { Array(String(arrayID).utf8) }

    /// The contract's key for a command addressed by workflow.
    public static func key(workflowID: Int64) -> [UInt8] { Array("wf-\(workflowID)".utf8) }

    /// The contract's key for `instantiate_task_instances` when the instances' array is not known:
    /// `ti-` and the lowest id listed.
    public static func key(taskInstanceIDs: [Int64]) -> [UInt8] { Array("ti-\(taskInstanceIDs.min() ?? 0)".utf8) }
}
