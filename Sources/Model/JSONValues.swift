/// Reading JSON as `JSONSerialization` gives it: a file's top-level object, and typed values that
/// tell booleans from numbers (both arrive as NSNumber).

import Foundation

/// The top-level object of the JSON file at `path`.
public func readJSONObject(_ path: String) throws -> [String: Any] {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw TokenizerFileError.unreadable(path: path, reason: "no such file, or not readable")
    }
    let parsed: Any
    do { parsed = try JSONSerialization.jsonObject(with: data) } catch {
        throw TokenizerFileError.unreadable(path: path, reason: "not valid JSON (\(error.localizedDescription))")
    }
    guard let root = parsed as? [String: Any] else {
        throw TokenizerFileError.unreadable(path: path, reason: "the top level is not a JSON object")
    }
    return root
}

/// JSONSerialization gives true/false as NSNumbers of ObjC type "c" (char).
private func isBoolNumber(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

func jsonBool(_ v: Any) -> Bool? {
    if let b = v as? Bool, let n = v as? NSNumber, isBoolNumber(n) { return b }
    return nil
}

func jsonInt(_ v: Any) -> Int? {
    guard let n = v as? NSNumber, !isBoolNumber(n) else { return nil }
    let d = n.doubleValue
    guard d.rounded() == d, abs(d) < 1e15 else { return nil }
    return n.intValue
}

func jsonDouble(_ v: Any) -> Double? {
    guard let n = v as? NSNumber, !isBoolNumber(n) else { return nil }
    return n.doubleValue
}

func describeJSON(_ v: Any?) -> String {
    guard let v, !(v is NSNull) else { return "null" }
    if let s = v as? String { return String(reflecting: s) }
    if let data = try? JSONSerialization.data(withJSONObject: v, options: [.fragmentsAllowed]) {
        let s = String(decoding: data, as: UTF8.self)
        return s.count > 200 ? String(s.prefix(200)) + "…" : s
    }
    return "\(v)"
}
