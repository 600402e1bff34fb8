/// chrF (Popović 2015) as sacreBLEU 2.x computes it by default: character n-grams of orders
/// 1…6 over the text with all whitespace removed (Unicode code points, case kept), no word
/// n-grams, β = 2. Corpus chrF sums the per-sentence [hypothesis, reference, match] counts of
/// each order over the corpus, then averages precision and recall over the orders that have
/// both hypothesis and reference n-grams and returns 100 · F_β of the averages.
public enum ChrF {
    public static let charOrder = 6
    public static let beta = 2.0

    /// Counts of order n at index 3(n−1): hypothesis n-grams (0 when the reference has none of
    /// that order), reference n-grams, matches.
    public static func statistics(hypothesis: String, reference: String, order: Int = charOrder) -> [Int] {
        let h = scalars(hypothesis), r = scalars(reference)
        var out: [Int] = []
        for n in 1...order {
            let hc = ngrams(h, n), rc = ngrams(r, n)
            var match = 0
            for (g, c) in hc { if let d = rc[g] { match += min(c, d) } }
            // As sacreBLEU: hypothesis n-grams are not counted when the reference has none.
            let nr = max(r.count - n + 1, 0)
            out += [nr > 0 ? max(h.count - n + 1, 0) : 0, nr, match]
        }
        return out
    }

    /// Corpus chrF in [0, 100] (one reference per hypothesis).
    public static func corpus(hypotheses: [String], references: [String], order: Int = charOrder) throws -> Double {
        guard hypotheses.count == references.count else {
            throw BLEUError.lengthMismatch(hypotheses: hypotheses.count, references: references.count)
        }
        var total = [Int](repeating: 0, count: 3 * order)
        for (h, r) in zip(hypotheses, references) {
            for (i, v) in statistics(hypothesis: h, reference: r, order: order).enumerated() { total[i] += v }
        }
        return score(total, order: order)
    }

    /// sacreBLEU's `_compute_f_score` without eps smoothing.
    static func score(_ s: [Int], order: Int) -> Double {
        let factor = beta * beta
        var avgPrec = 0.0, avgRec = 0.0, effective = 0
        for i in 0..<order {
            let nh = s[3 * i], nr = s[3 * i + 1], nm = s[3 * i + 2]
            guard nh > 0 && nr > 0 else { continue }
            avgPrec += Double(nm) / Double(nh)
            avgRec += Double(nm) / Double(nr)
            effective += 1
        }
        guard effective > 0 else { return 0 }
        avgPrec /= Double(effective); avgRec /= Double(effective)
        guard avgPrec + avgRec > 0 else { return 0 }
        return 100 * (1 + factor) * avgPrec * avgRec / (factor * avgPrec + avgRec)
    }

    /// The code points of `s` without whitespace (Python's `''.join(s.split())`).
    static func scalars(_ s: String) -> [UInt32] {
        s.unicodeScalars.filter { !($0.properties.isWhitespace || (0x1C...0x1F).contains($0.value)) }.map(\.value)
    }

    static func ngrams(_ a: [UInt32], _ n: Int) -> [ArraySlice<UInt32>: Int] {
        var c: [ArraySlice<UInt32>: Int] = [:]
        if a.count >= n { for i in 0...(a.count - n) { c[a[i..<(i + n)], default: 0] += 1 } }
        return c
    }
}
