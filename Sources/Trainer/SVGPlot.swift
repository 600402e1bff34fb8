import Foundation

/// A small, dependency-free line-plot renderer: one polyline (with point markers) per series,
/// linear axes with "nice" ticks, a legend, and dashed horizontal baselines for series that
/// consist of a single point at x = 0 (a model evaluated only before training).
///
/// Output is deterministic: coordinates are printed with fixed precision, series are drawn in
/// the order given.
public struct SVGPlot {
    public struct Series {
        public var name: String
        /// (x, y) points; non-finite ones are dropped when drawing.
        public var points: [(x: Double, y: Double)]
        /// Stroke colour (an SVG colour, e.g. `#1f77b4`).
        public var color: String
        /// Draw a moving average (window `SVGPlot.smoothingWindow`) over faint raw points when
        /// the series has more than `SVGPlot.smoothingThreshold` points.
        public var smooth: Bool
        /// A shaded band (e.g. ± one standard error over seeds) drawn under the line.
        public var band: [(x: Double, lo: Double, hi: Double)] = []

        public init(name: String, points: [(x: Double, y: Double)], color: String, smooth: Bool = false) {
            self.name = name
            self.points = points
            self.color = color
            self.smooth = smooth
        }

        var finitePoints: [(x: Double, y: Double)] { points.filter { $0.x.isFinite && $0.y.isFinite } }

        /// A single point at x = 0: drawn as a dashed horizontal line across the plot.
        public var isBaseline: Bool {
            let p = finitePoints
            return p.count == 1 && p[0].x == 0
        }
    }

    public static let smoothingWindow = 5
    public static let smoothingThreshold = 10

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    /// A line of small print under the legend (e.g. what the bands are).
    public var note: String?
    public var width: Double = 760
    public var height: Double = 440

    public init(title: String, xLabel: String, yLabel: String, series: [Series]) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
    }

    // MARK: scales and ticks

    /// 1, 2, 2.5 or 5 times a power of ten, at least `raw`.
    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0, raw.isFinite else { return 1 }
        let mag = pow(10, floor(log10(raw)))
        let f = raw / mag
        let n: Double = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10
        return n * mag
    }

    /// A range covering [lo, hi] whose ends are multiples of a nice step giving about `count`
    /// intervals. A degenerate range is widened around its value.
    static func niceScale(lo: Double, hi: Double, count: Int = 5, minStep: Double = 0) -> (lo: Double, hi: Double, step: Double) {
        var a = lo, b = hi
        if !(b > a) {
            let pad = a == 0 ? 1 : abs(a) * 0.1
            a -= pad
            b += pad
        }
        let step = max(niceStep((b - a) / Double(count)), minStep)
        return (floor(a / step + 1e-9) * step, ceil(b / step - 1e-9) * step, step)
    }

    static func ticks(lo: Double, hi: Double, step: Double) -> [Double] {
        let n = Int(((hi - lo) / step).rounded())
        return (0...max(n, 0)).map { i in
            let v = lo + Double(i) * step
            return abs(v) < step * 1e-9 ? 0 : v
        }
    }

    /// Digits after the decimal point needed to print multiples of `step` exactly.
    static func decimals(for step: Double) -> Int {
        var d = 0
        var s = step
        while d < 10 && abs(s - s.rounded()) > 1e-6 * max(1, abs(s)) {
            d += 1
            s *= 10
        }
        return d
    }

    static func label(_ v: Double, decimals d: Int) -> String {
        let s = String(format: "%.\(d)f", v)
        return s.hasPrefix("-") && Double(s) == 0 ? String(s.dropFirst()) : s
    }

    static func f(_ v: Double) -> String { String(format: "%.2f", v) }

    /// Text escaped for SVG/XML character data and attribute values.
    public static func escape(_ s: String) -> String {
        var out = ""
        for ch in s {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(ch)
            }
        }
        return out
    }

    /// Centered moving average; windows shrink at the ends so every point has a value.
    static func movingAverage(_ ys: [Double], window: Int) -> [Double] {
        let h = window / 2
        return ys.indices.map { i in
            let lo = max(0, i - h), hi = min(ys.count - 1, i + h)
            return ys[lo...hi].reduce(0, +) / Double(hi - lo + 1)
        }
    }

    // MARK: rendering

    public func render() -> String {
        let left = 72.0, right = 190.0, top = 44.0, bottom = 56.0
        let plotW = width - left - right, plotH = height - top - bottom

        let drawn: [(series: Series, points: [(x: Double, y: Double)])] = series.map { ($0, $0.finitePoints) }
        let lines = drawn.filter { !$0.points.isEmpty && !$0.series.isBaseline }
        let xs: [Double] = lines.flatMap { $0.points.map { $0.x } }
        let ys: [Double] = drawn.flatMap { $0.points.map { $0.y } }
            + series.flatMap { $0.band.flatMap { [$0.lo, $0.hi] } }.filter(\.isFinite)

        var xMin = xs.min() ?? 0, xMax = xs.max() ?? 1
        xMin = min(xMin, 0)
        if !(xMax > xMin) { xMax = xMin + 1 }
        let xs5 = Self.niceScale(lo: xMin, hi: xMax, count: 6, minStep: 1)
        // A little headroom so extreme points and baselines do not sit on the frame.
        let yMin = ys.min() ?? 0, yMax = ys.max() ?? 1, pad = (yMax - yMin) * 0.05
        let ys5 = Self.niceScale(lo: yMin - pad, hi: yMax + pad, count: 5)
        let px = { (x: Double) -> Double in left + (x - xs5.lo) / (xs5.hi - xs5.lo) * plotW }
        let py = { (y: Double) -> Double in top + plotH - (y - ys5.lo) / (ys5.hi - ys5.lo) * plotH }

        var o = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        o += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" "
        o += "viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        o += "<defs><clipPath id=\"plot-area\"><rect x=\"\(Self.f(left - 4))\" y=\"\(Self.f(top - 4))\" "
        o += "width=\"\(Self.f(plotW + 8))\" height=\"\(Self.f(plotH + 8))\"/></clipPath></defs>\n"
        o += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        o += "<text class=\"title\" x=\"\(Self.f(left + plotW / 2))\" y=\"24\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">\(Self.escape(title))</text>\n"

        // Grid, axes, ticks.
        let yd = Self.decimals(for: ys5.step), xd = Self.decimals(for: xs5.step)
        o += "<g class=\"y-ticks\" stroke=\"#ddd\">\n"
        for t in Self.ticks(lo: ys5.lo, hi: ys5.hi, step: ys5.step) {
            let y = Self.f(py(t))
            o += "<line x1=\"\(Self.f(left))\" y1=\"\(y)\" x2=\"\(Self.f(left + plotW))\" y2=\"\(y)\"/>"
            o += "<line x1=\"\(Self.f(left - 5))\" y1=\"\(y)\" x2=\"\(Self.f(left))\" y2=\"\(y)\" stroke=\"black\"/>"
            o += "<text x=\"\(Self.f(left - 8))\" y=\"\(y)\" dy=\"4\" text-anchor=\"end\" stroke=\"none\">\(Self.label(t, decimals: yd))</text>\n"
        }
        o += "</g>\n<g class=\"x-ticks\" stroke=\"black\">\n"
        for t in Self.ticks(lo: xs5.lo, hi: xs5.hi, step: xs5.step) {
            let x = Self.f(px(t))
            o += "<line x1=\"\(x)\" y1=\"\(Self.f(top + plotH))\" x2=\"\(x)\" y2=\"\(Self.f(top + plotH + 5))\"/>"
            o += "<text x=\"\(x)\" y=\"\(Self.f(top + plotH + 19))\" text-anchor=\"middle\" stroke=\"none\">\(Self.label(t, decimals: xd))</text>\n"
        }
        o += "</g>\n"
        o += "<rect class=\"frame\" x=\"\(Self.f(left))\" y=\"\(Self.f(top))\" width=\"\(Self.f(plotW))\" height=\"\(Self.f(plotH))\" fill=\"none\" stroke=\"black\"/>\n"
        o += "<text class=\"x-label\" x=\"\(Self.f(left + plotW / 2))\" y=\"\(Self.f(height - 14))\" text-anchor=\"middle\">\(Self.escape(xLabel))</text>\n"
        let yc = top + plotH / 2
        o += "<text class=\"y-label\" x=\"18\" y=\"\(Self.f(yc))\" text-anchor=\"middle\" transform=\"rotate(-90 18 \(Self.f(yc)))\">\(Self.escape(yLabel))</text>\n"

        // Series.
        o += "<g clip-path=\"url(#plot-area)\" fill=\"none\">\n"
        var anySmoothed = false
        for (s, pts) in drawn where !pts.isEmpty {
            let band = s.band.filter { $0.x.isFinite && $0.lo.isFinite && $0.hi.isFinite }
            guard band.count >= 2 else { continue }
            let upper = band.map { "\(Self.f(px($0.x))),\(Self.f(py($0.hi)))" }
            let lower = band.reversed().map { "\(Self.f(px($0.x))),\(Self.f(py($0.lo)))" }
            o += "<polygon class=\"band\" data-run=\"\(Self.escape(s.name))\" points=\"\((upper + lower).joined(separator: " "))\" "
            o += "fill=\"\(s.color)\" fill-opacity=\"0.18\" stroke=\"none\"/>\n"
        }
        for (s, pts) in drawn where !pts.isEmpty {
            let name = Self.escape(s.name)
            if s.isBaseline {
                let y = Self.f(py(pts[0].y))
                o += "<line class=\"baseline\" data-run=\"\(name)\" x1=\"\(Self.f(left))\" y1=\"\(y)\" x2=\"\(Self.f(left + plotW))\" y2=\"\(y)\" "
                o += "stroke=\"\(s.color)\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n"
                o += "<text class=\"baseline-label\" x=\"\(Self.f(left + plotW - 4))\" y=\"\(y)\" dy=\"-4\" text-anchor=\"end\" fill=\"\(s.color)\">\(name)</text>\n"
                continue
            }
            let smoothed = s.smooth && pts.count > Self.smoothingThreshold
            anySmoothed = anySmoothed || smoothed
            let opacity = smoothed ? "0.3" : "1"
            let coords = pts.map { "\(Self.f(px($0.x))),\(Self.f(py($0.y)))" }.joined(separator: " ")
            o += "<polyline class=\"series\" data-run=\"\(name)\" points=\"\(coords)\" stroke=\"\(s.color)\" "
            o += "stroke-width=\"\(smoothed ? "1" : "1.8")\" stroke-opacity=\"\(opacity)\"/>\n"
            o += "<g class=\"markers\" data-run=\"\(name)\" fill=\"\(s.color)\" fill-opacity=\"\(opacity)\">"
            for p in pts { o += "<circle cx=\"\(Self.f(px(p.x)))\" cy=\"\(Self.f(py(p.y)))\" r=\"\(smoothed ? "1.5" : "2.5")\"/>" }
            o += "</g>\n"
            if smoothed {
                let avg = Self.movingAverage(pts.map { $0.y }, window: Self.smoothingWindow)
                let c = zip(pts, avg).map { "\(Self.f(px($0.0.x))),\(Self.f(py($0.1)))" }.joined(separator: " ")
                o += "<polyline class=\"smoothed\" data-run=\"\(name)\" points=\"\(c)\" stroke=\"\(s.color)\" stroke-width=\"2\"/>\n"
            }
        }
        o += "</g>\n"

        // Legend.
        let lx = left + plotW + 16
        var ly = top + 8
        o += "<g class=\"legend\">\n"
        for (s, pts) in drawn where !pts.isEmpty {
            let dash = s.isBaseline ? " stroke-dasharray=\"6 4\"" : ""
            o += "<line x1=\"\(Self.f(lx))\" y1=\"\(Self.f(ly))\" x2=\"\(Self.f(lx + 24))\" y2=\"\(Self.f(ly))\" stroke=\"\(s.color)\" stroke-width=\"2\"\(dash)/>"
            o += "<text x=\"\(Self.f(lx + 30))\" y=\"\(Self.f(ly))\" dy=\"4\">\(Self.escape(s.name))</text>\n"
            ly += 18
        }
        if anySmoothed {
            o += "<text class=\"note\" x=\"\(Self.f(lx))\" y=\"\(Self.f(ly + 8))\" font-size=\"10\" fill=\"#555\">faint: raw values</text>\n"
            o += "<text class=\"note\" x=\"\(Self.f(lx))\" y=\"\(Self.f(ly + 21))\" font-size=\"10\" fill=\"#555\">solid: moving average (\(Self.smoothingWindow))</text>\n"
        }
        if let note {
            o += "<text class=\"note\" x=\"\(Self.f(lx))\" y=\"\(Self.f(ly + (anySmoothed ? 34 : 8)))\" font-size=\"10\" fill=\"#555\">\(Self.escape(note))</text>\n"
        }
        o += "</g>\n</svg>\n"
        return o
    }
}
