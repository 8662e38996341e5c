// arrayfsm — the command line: argument parsing and wiring of the modules; no logic of its own.
import ArrayFSMTools
import Foundation

/// A progress line with rate and ETA on stderr when it is a terminal; one quiet line at the end otherwise.
final class Progress {
    let label: String
    let start = ContinuousClock.now
    let isTerminal = isatty(2) == 1
    var last = ContinuousClock.now - .seconds(1)

    /// Back to the line's start and clear it: a shorter line must not leave the end of a longer one.
    static let eraseLine = "\r\u{1B}[2K"

    init(label: String) { self.label = label }

    func update(_ done: Int, of total: Int? = nil) {
        guard isTerminal, ContinuousClock.now - last > .milliseconds(200) else { return }
        last = .now
        let elapsed = (ContinuousClock.now - start).seconds
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        var line = Self.eraseLine + "\(label): \(done)"
        if let total, total > 0 {
            let width = 30
            let filled = min(width, done * width / total)
            line += "/\(total) [" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "]"
            if rate > 0 { line += String(format: " ETA %.0fs", Double(max(0, total - done)) / rate) }
        }
        line += String(format: " %.0f/s", rate)
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish(_ summary: String) {
        let elapsed = (ContinuousClock.now - start).seconds
        FileHandle.standardError.write(Data(((isTerminal ? Self.eraseLine : "") + String(format: "\(label): \(summary) in %.1f s\n", elapsed)).utf8))
    }
}
