import Foundation

/// Deterministic JSON text for objects built from Swift values (`String`, `Bool`, integers,
/// `Double`/`Float`, `NSNull`, arrays, `[String: Any]`): object keys sorted by Unicode code
/// points and strings escaped as Python's `json.dumps(sort_keys=True, ensure_ascii=False)`
/// does (`"`, `\\` and control characters; other characters as UTF-8). Foundation's
/// `.sortedKeys` compares keys with a locale-aware comparison: for a 49,152-entry vocabulary
/// that took seconds per checkpoint (every checkpoint writes tokenizer.json).
public enum JSONText {
    public struct Unsupported: Error, CustomStringConvertible {
        public var description: String
    }

    /// The JSON text of `value`; `indent` > 0 pretty-prints with that many spaces per level.
    public static func encode(_ value: Any, indent: Int = 0) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(1 << 16)
        try write(value, into: &out, indent: indent, level: 0)
        return out
    }

    static func write(_ value: Any, into out: inout [UInt8], indent: Int, level: Int) throws {
        func newline(_ l: Int) {
            guard indent > 0 else { return }
            out.append(0x0A)
            out.append(contentsOf: repeatElement(0x20, count: indent * l))
        }
        switch value {
        case is NSNull:
            out += Array("null".utf8)
        case let b as Bool:
            out += Array((b ? "true" : "false").utf8)
        case let s as String:
            string(s, into: &out)
        case let i as Int:
            out += Array(String(i).utf8)
        case let i as Int32:
            out += Array(String(i).utf8)
        case let i as Int64:
            out += Array(String(i).utf8)
        case let i as UInt32:
            out += Array(String(i).utf8)
        case let i as UInt64:
            out += Array(String(i).utf8)
        case let d as Double:
            guard d.isFinite else { throw Unsupported(description: "non-finite number \(d) has no JSON form") }
            out += Array("\(d)".utf8)   // the shortest text that reads back to d (e.g. 2.0, 1e-05)
        case let f as Float:
            try write(Double("\(f)")!, into: &out, indent: indent, level: level)
        case let a as [Any]:
            out.append(UInt8(ascii: "["))
            for (i, v) in a.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                newline(level + 1)
                try write(v, into: &out, indent: indent, level: level + 1)
            }
            if !a.isEmpty { newline(level) }
            out.append(UInt8(ascii: "]"))
        case let o as [String: Any]:
            out.append(UInt8(ascii: "{"))
            let keys = o.keys.sorted { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) }
            for (i, k) in keys.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                newline(level + 1)
                string(k, into: &out)
                out.append(UInt8(ascii: ":"))
                if indent > 0 { out.append(0x20) }
                try write(o[k]!, into: &out, indent: indent, level: level + 1)
            }
            if !o.isEmpty { newline(level) }
            out.append(UInt8(ascii: "}"))
        default:
            throw Unsupported(description: "a value of type \(type(of: value)) has no JSON form here")
        }
    }

    static func string(_ s: String, into out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x0A: out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0x08: out += [UInt8(ascii: "\\"), UInt8(ascii: "b")]
            case 0x0C: out += [UInt8(ascii: "\\"), UInt8(ascii: "f")]
            case 0..<0x20:
                out += Array("\\u00".utf8)
                out += [hex[Int(b >> 4)], hex[Int(b & 15)]]
            default: out.append(b)   // UTF-8 bytes of other scalars pass through
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
