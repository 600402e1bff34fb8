/// Which keys each query may attend to, described by key ranges instead of a dense S×S mask.
///
/// Query `q` sees the prefix `[0, prefixEnd[q])` plus the explicit keys
/// `extraKeys[extraStart[q] ..< extraStart[q + 1]]` (sorted, each `>= prefixEnd[q]`).
/// Every query must see at least one key. `positions[q]` is the rotary position id of token
/// `q`, which need not equal `q` (EBFT's generated tokens sit after the chunk but take the
/// positions of the ground-truth tokens they replace).
///
/// Plain causal attention is `prefixEnd[q] = q + 1` with no extras. The strided EBFT layout
/// (spec §4.3) is built by `Rollout.StridedGeometry`. The same value drives sampling with a KV
/// cache, the feature network's forward and the learner's teacher-forced forward.
public struct AttentionLayout: Equatable, Sendable {
    public private(set) var positions: [Int32]
    public private(set) var prefixEnd: [Int32]
    public private(set) var extraStart: [Int32]
    public private(set) var extraKeys: [Int32]

    public var count: Int { positions.count }

    public init() {
        positions = []
        prefixEnd = []
        extraStart = [0]
        extraKeys = []
    }

    /// Plain causal attention over `length` tokens with positions `0..<length`.
    public static func causal(length: Int) -> AttentionLayout {
        var l = AttentionLayout()
        l.reserve(length)
        for q in 0..<length { l.append(position: q, prefixEnd: q + 1, extras: []) }
        return l
    }

    public mutating func reserve(_ n: Int) {
        positions.reserveCapacity(n)
        prefixEnd.reserveCapacity(n)
        extraStart.reserveCapacity(n + 1)
    }

    /// Appends query `count` with its rotary position, its visible prefix `[0, prefixEnd)` and
    /// its extra visible keys (ascending, each `>= prefixEnd` and `<= count`).
    public mutating func append(position: Int, prefixEnd end: Int, extras: [Int]) {
        let q = count
        precondition(end >= 0 && end <= q + 1, "prefixEnd \(end) out of range for query \(q)")
        precondition(end > 0 || !extras.isEmpty, "query \(q) would see no key")
        var last = end - 1
        for k in extras {
            precondition(k > last && k <= q, "extra key \(k) of query \(q) not ascending/causal")
            last = k
            extraKeys.append(Int32(k))
        }
        positions.append(Int32(position))
        prefixEnd.append(Int32(end))
        extraStart.append(Int32(extraKeys.count))
    }

    /// The extra keys of query `q`.
    @inlinable public func extras(of q: Int) -> ArraySlice<Int32> {
        extraKeys[Int(extraStart[q])..<Int(extraStart[q + 1])]
    }

    /// All keys query `q` sees, ascending (for tests and reference code; O(keys)).
    public func visibleKeys(of q: Int) -> [Int] {
        Array(0..<Int(prefixEnd[q])) + extras(of: q).map { Int($0) }
    }

    /// True when this is plain causal attention with positions `0..<count`.
    public var isCausal: Bool {
        for q in 0..<count where positions[q] != q || prefixEnd[q] != q + 1 || extraStart[q + 1] != extraStart[q] {
            return false
        }
        return true
    }
}
