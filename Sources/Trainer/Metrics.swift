import Foundation
import Model

/// One step's (or one evaluation's) metrics: ordered name → number, plus a few strings.
public struct MetricsRecord: Sendable {
    public private(set) var keys: [String] = []
    public private(set) var numbers: [String: Double] = [:]
    public private(set) var strings: [String: String] = [:]

    public init() {}

    public subscript(key: String) -> Double? {
        get { numbers[key] }
        set {
            if numbers[key] == nil && strings[key] == nil { keys.append(key) }
            numbers[key] = newValue
        }
    }

    public mutating func set(_ key: String, _ value: String) {
        if numbers[key] == nil && strings[key] == nil { keys.append(key) }
        strings[key] = value
    }

    /// Adds `value` to `key` (starting from 0).
    public mutating func add(_ key: String, _ value: Double) {
        self[key] = (self[key] ?? 0) + value
    }

    /// One JSON object on one line, keys in insertion order; non-finite numbers become null.
    public func jsonLine() -> String {
        var parts: [String] = []
        for k in keys {
            if let s = strings[k] {
                parts.append("\(Self.quote(k)):\(Self.quote(s))")
            } else if let v = numbers[k] {
                parts.append("\(Self.quote(k)):\(Self.number(v))")
            }
        }
        return "{" + parts.joined(separator: ",") + "}"
    }

    static func number(_ v: Double) -> String {
        guard v.isFinite else { return "null" }
        if v == v.rounded() && abs(v) < 1e15 { return String(Int64(v)) }
        return "\(v)"
    }

    static func quote(_ s: String) -> String { jsonQuoted(s) }
}

/// Appends JSON lines to a file, flushing each line so a killed run loses nothing written.
public final class JSONLWriter {
    public let path: String
    private let handle: FileHandle
    /// Where every record's numbers also go, as TensorBoard scalars (the trainer's rank 0 sets it).
    public var tensorboard: TensorBoardWriter?

    public init(path: String) throws {
        self.path = path
        let fm = FileManager.default
        try fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        if !fm.fileExists(atPath: path) { _ = fm.createFile(atPath: path, contents: nil) }
        guard let h = FileHandle(forWritingAtPath: path) else {
            throw TrainerError.io("cannot open \(path) for appending")
        }
        h.seekToEndOfFile()
        handle = h
    }

    deinit { try? handle.close() }

    public func write(_ record: MetricsRecord) {
        handle.write((record.jsonLine() + "\n").data(using: .utf8)!)
        try? handle.synchronize()
        tensorboard?.write(record)
    }
}

/// Rank 0's progress line: step, ETA and a few headline metrics. On a terminal it redraws one
/// line; otherwise it prints one line per step.
public final class ProgressBar {
    let total: Int
    let start = Date()
    let interactive: Bool
    var firstStep: Int?

    public init(total: Int, interactive: Bool = isatty(2) != 0) {
        self.total = total
        self.interactive = interactive
    }

    /// `note`: appended to the line (e.g. a bad step's anomaly).
    public func update(step: Int, fields: [(String, Double)], note: String? = nil) {
        if firstStep == nil { firstStep = step - 1 }
        let done = step - (firstStep ?? 0)
        let elapsed = Date().timeIntervalSince(start)
        let eta = done > 0 ? elapsed / Double(done) * Double(total - step) : 0
        let width = 20
        let filled = total > 0 ? min(width, width * step / total) : width
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let f = fields.map { "\($0.0) \(String(format: "%.4g", $0.1))" }.joined(separator: "  ")
        let line = "step \(step)/\(total) [\(bar)] \(Self.clock(elapsed)) eta \(Self.clock(eta))  \(f)"
            + (note.map { "  \($0)" } ?? "")
        if interactive {
            FileHandle.standardError.write(("\r\u{1B}[K" + line).data(using: .utf8)!)
            // A line with a note stays on screen.
            if step == total || note != nil { FileHandle.standardError.write("\n".data(using: .utf8)!) }
        } else {
            FileHandle.standardError.write((line + "\n").data(using: .utf8)!)
        }
    }

    public static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
                         : String(format: "%d:%02d", s / 60, s % 60)
    }
}

public enum TrainerError: Error, CustomStringConvertible {
    case io(String)
    case data(String)
    case diverged(String)
    case replicasDisagree(String)
    case lostRank(String)

    public var description: String {
        switch self {
        case let .io(m): return "I/O error: \(m)"
        case let .data(m): return "data error: \(m)"
        case let .diverged(m): return "training diverged: \(m)"
        case let .replicasDisagree(m): return "learner replicas disagree: \(m)"
        case let .lostRank(m): return "lost rank: \(m)"
        }
    }
}
