/// Ids as runs of consecutive values, to be bound as two arrays (`lows`, `highs`) and scanned as
/// primary-key ranges: `JOIN unnest($lows, $highs) AS r(lo, hi) ON t.id BETWEEN r.lo AND r.hi`.
///
/// A task array's tasks are created together, so their ids are consecutive: 100 commands × 1,000
/// ids are 100 runs. PostgreSQL 15 descends the index once per element of `id = ANY($ids)`
/// (100,000 descents: 3 buffer hits each), but once per range here (the leaf pages are then read
/// in order). Ids that are not consecutive cost what `= ANY` costs: a run of one is one descent.
///
/// Every value between a run's bounds is one of the ids, so a range scan finds exactly the rows
/// the ids name.
public struct IDRuns: Sendable, Hashable {
    /// The first id of each run, ascending.
    public private(set) var lows: [Int64] = []
    /// The last id of each run.
    public private(set) var highs: [Int64] = []

    /// The runs of `ids` (any order; repeats count once).
    public init<S: Sequence<Int64>>(_ ids: S) {
        var sorted = Array(ids)
        sorted.sort()
        for id in sorted {
            if let last = highs.last {
                if id == last { continue }
                if id == last &+ 1 && last != .max {
                    highs[highs.count - 1] = id
                    continue
                }
            }
            lows.append(id)
            highs.append(id)
        }
    }

    public var isEmpty: Bool { lows.isEmpty }

    /// How many ids the runs hold.
    public var idCount: Int { zip(lows, highs).reduce(0) { $0 + Int($1.1 - $1.0) + 1 } }
}
