import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A regular file mapped read-only into memory, unmapped when released. The model readers
/// (GGUF, safetensors) parse and copy straight out of the mapping.
final class MappedFile: @unchecked Sendable {
    let size: Int
    /// nil for an empty file.
    let base: UnsafeRawPointer?

    /// Throws `reason` strings (the caller wraps them in its own error type with the path).
    init(path: String) throws {
        let fd = open(path, O_RDONLY)
        if fd < 0 { throw Failure(reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 { throw Failure(reason: String(cString: strerror(errno))) }
        if (st.st_mode & S_IFMT) != S_IFREG { throw Failure(reason: "not a regular file") }
        size = Int(st.st_size)
        if size > 0 {
            let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
            if p == MAP_FAILED || p == nil { throw Failure(reason: "mmap failed: \(String(cString: strerror(errno)))") }
            base = UnsafeRawPointer(p!)
        } else {
            base = nil
        }
    }

    deinit {
        if let m = base { munmap(UnsafeMutableRawPointer(mutating: m), size) }
    }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }

    struct Failure: Error { var reason: String }
}

/// JSON string literal for `s` (quotes, backslashes and control characters escaped).
public func jsonQuoted(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 {
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    return out + "\""
}
