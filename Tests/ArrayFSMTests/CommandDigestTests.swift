@testable import ArrayFSM
import Foundation
import Testing

struct CommandDigestTests {
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    ])
    func sha256MatchesTheStandardVectors(input: String, hex: String) {
        var hash = SHA256()
        hash.update(Array(input.utf8))
        #expect(CommandDigest(bytes: hash.finalize()).description == hex)
    }

    @Test func sha256OfAMillionBytesFedInUnevenPieces() {
        var hash = SHA256()
        let bytes = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        var start = 0
        var step = 1
        while start < bytes.count {
            hash.update(bytes[start..<min(bytes.count, start + step)])
            start += step
            step = step % 97 + 13
        }
        #expect(CommandDigest(bytes: hash.finalize()).description == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func theDigestCoversTypeKeyAndThePayloadBytesOnly() {
        func digest(_ json: String, type: String = "transition_to_killed", key: String? = "7") -> CommandDigest {
            CommandDigest(type: type, key: key.map { Array($0.utf8) }, message: Array(json.utf8))
        }
        let original = digest(#"{"command_id":"a","type":"transition_to_killed","payload":{"array_id":7,"batch_number":1}}"#)
        #expect(original == digest(#"{"type":"transition_to_killed", "payload":{"array_id":7,"batch_number":1},"command_id":"a","reply_to":"x","issued_at":"2026-01-01T00:00:00Z","version":1}"#),
                "the envelope's delivery fields and member order around the payload do not count")
        #expect(original != digest(#"{"command_id":"a","type":"transition_to_killed","payload":{"array_id":7,"batch_number":2}}"#))
        #expect(original != digest(#"{"command_id":"a","type":"transition_to_killed","payload":{"batch_number":1,"array_id":7}}"#),
                "another encoding of the payload is another command")
        #expect(original != digest(#"{"command_id":"a","type":"transition_to_killed","payload":{"array_id":7,"batch_number":1}}"#, key: "8"))
        #expect(original != digest(#"{"command_id":"a","type":"transition_to_killed","payload":{"array_id":7,"batch_number":1}}"#, key: nil))
        #expect(original != digest(#"{"command_id":"a","type":"transition_to_killed","payload":{"array_id":7,"batch_number":1}}"#, type: "instantiate_array_batch"))
        // A message whose top level cannot be read plainly is digested whole.
        let escaped = #"{"command_id":"a","typ\u0065":"transition_to_killed","payload":{"array_id":7,"batch_number":1}}"#
        #expect(digest(escaped) == digest(escaped))
        #expect(digest(escaped) != original)
    }

    @Test func theDecoderDigestsWhatItDecodes() throws {
        let message = Data(#"{"command_id":"a","type":"transition_to_killed","payload":{"array_id":7,"batch_number":1}}"#.utf8)
        let command = try CommandDecoder().decode(message, key: Array("7".utf8))
        #expect(command.envelope.digest == CommandDigest(type: "transition_to_killed", key: Array("7".utf8), message: Array(message)))
    }

    @Test func aMessageWithoutPayloadIsNotACommand() {
        let resultEvent = Data(#"{"event_id":"a:result","command_id":"a","type":"add_array","status":"ok","result":{"array_id":1}}"#.utf8)
        #expect(throws: CommandDecoder.Undecodable.self) { try CommandDecoder().decode(resultEvent) }
        do {
            _ = try CommandDecoder().decode(resultEvent)
        } catch let error as CommandDecoder.Undecodable {
            #expect(error.code == "not_a_command")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}
