import Foundation

/// This process's peak resident memory: the kernel's high-water mark of the resident set.
public enum PeakMemory {
    /// VmHWM from /proc/self/status in bytes (Linux), else getrusage's ru_maxrss; nil when
    /// neither is available.
    public static func residentBytes() -> Int? {
        if let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) {
            for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
                // "VmHWM:	  123456 kB"
                let fields = line.dropFirst(6).split(separator: " ", omittingEmptySubsequences: true)
                    .flatMap { $0.split(separator: "\t") }
                if let kb = fields.first.flatMap({ Int($0) }), fields.dropFirst().first == "kB" { return kb * 1024 }
            }
        }
        var usage = rusage()
        #if os(Linux)
        guard getrusage(RUSAGE_SELF.rawValue, &usage) == 0, usage.ru_maxrss > 0 else { return nil }
        return Int(usage.ru_maxrss) * 1024     // kilobytes on Linux
        #else
        guard getrusage(RUSAGE_SELF, &usage) == 0, usage.ru_maxrss > 0 else { return nil }
        return Int(usage.ru_maxrss)            // bytes on Darwin
        #endif
    }

    /// The peak in MiB (the `peak_rss_mb` metrics), NaN when unknown.
    public static func residentMiB() -> Double {
        residentBytes().map { Double($0) / 1_048_576 } ?? .nan
    }
}
