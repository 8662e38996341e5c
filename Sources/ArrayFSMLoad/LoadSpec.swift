/// What a generated workload looks like; `gen` and `seed` read the same spec, so a dump always
/// refers to exactly the arrays and tasks that `seed` creates.
public struct LoadSpec: Codable, Sendable, Hashable {
    /// Seed of the pseudo-random choices: the same spec gives the same dump, byte for byte.
    public var seed: UInt64 = 1
    public var workflows = 10
    public var arraysPerWorkflow = 10
    /// Tasks per array: log-uniform between these (inclusive).
    public var minTasks = 10
    public var maxTasks = 1000
    /// Tasks per scheduler batch (Jobmon's scheduler uses at most 500).
    public var batchSize = 500
    /// Share of launched batches that then get `transition_to_killed`.
    public var killFraction = 0.05
    /// Share of batches whose cluster submission fails (`log_array_submit_failed` instead of a launch).
    public var submitFailureFraction = 0.02
    /// A `get_array_max_concurrently_running` read before every this many batches of an array.
    public var maxConcurrencyReadEvery = 4
    /// First ids: workflows, arrays and tasks are numbered from these, so seeded rows never
    /// collide with rows a real client created.
    public var firstWorkflowID: Int64 = 1_000_000
    public var firstArrayID: Int64 = 1_000_000
    public var firstTaskID: Int64 = 1_000_000_000

    public init() {}

    /// One array of the workload.
    public struct PlannedArray: Sendable, Hashable {
        public var arrayID: Int64
        public var workflowID: Int64
        public var taskTemplateVersionID: Int64
        public var taskIDs: ClosedRange<Int64>
    }

    /// The arrays and their tasks, deterministic for the spec.
    public func plan() -> [PlannedArray] {
        var random = SplitMix64(seed: seed)
        var arrays: [PlannedArray] = []
        var nextTask = firstTaskID
        for w in 0..<workflows {
            for a in 0..<arraysPerWorkflow {
                let count = random.logUniform(minTasks, maxTasks)
                arrays.append(PlannedArray(
                    arrayID: firstArrayID + Int64(arrays.count), workflowID: firstWorkflowID + Int64(w),
                    taskTemplateVersionID: Int64(a + 1), taskIDs: nextTask...(nextTask + Int64(count) - 1)))
                nextTask += Int64(count)
            }
        }
        return arrays
    }

    /// Problems with the spec, as messages; empty when it is usable.
    public func problems() -> [String] {
        var problems: [String] = []
        if workflows < 1 || arraysPerWorkflow < 1 { problems.append("workflows and arrays per workflow must be at least 1") }
        if minTasks < 1 || maxTasks < minTasks { problems.append("tasks per array: need 1 ≤ min ≤ max") }
        if !(1...1000).contains(batchSize) { problems.append("batch size must be in 1...1000 (one batch per record command)") }
        if !(0...1).contains(killFraction) || !(0...1).contains(submitFailureFraction) { problems.append("fractions must be in 0...1") }
        if maxConcurrencyReadEvery < 1 { problems.append("max-concurrency read interval must be at least 1") }
        return problems
    }
}

/// A small, fast, reproducible random generator (SplitMix64): the same seed gives the same
/// sequence on every platform, which `SystemRandomNumberGenerator` does not promise.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A value in 0..<1.
    public mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }

    /// An integer between `low` and `high`, log-uniform (many small arrays, a few huge ones).
    public mutating func logUniform(_ low: Int, _ high: Int) -> Int {
        guard high > low else { return low }
        let value = Double(low) * Foundation.exp(unit() * Foundation.log(Double(high) / Double(low)))
        return min(high, max(low, Int(value.rounded())))
    }
}

import Foundation
