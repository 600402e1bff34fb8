import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs the built `ebft-dist` binary as a subprocess — directly or under `mpirun -np N` — with
/// a timeout, and captures its output. Reusable by every end-to-end test.
///
/// - The binary: `$EBFT_DIST_BIN`, else `ebft-dist` next to the test bundle (`.build/<config>/`).
/// - mpirun gets the settings this machine needs: as root `OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM)=1`;
///   more ranks than cores `--oversubscribe`; every rank `OPENBLAS_NUM_THREADS` (default 1).
/// - Inherited `OMPI_*` / `PMIX_*` variables are removed: a process that called MPI_Init (this
///   test process may have, for the singleton tests) carries them, and an mpirun that inherits
///   them exits 1 without a word.
/// - On timeout the whole process group (mpirun and its ranks) gets SIGTERM, then SIGKILL.
enum MPIRun {
    struct Output: CustomStringConvertible {
        var command: [String]
        /// Exit status, or 128 + signal number when killed by a signal.
        var exitCode: Int32
        /// The signal that ended the process, if any.
        var signal: Int32?
        var timedOut: Bool
        var stdout: String
        var stderr: String
        var seconds: Double

        var succeeded: Bool { exitCode == 0 && !timedOut && signal == nil }
        var lines: [String] { stdout.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) }

        var description: String {
            """
            $ \(command.joined(separator: " "))
            exit \(exitCode)\(signal.map { " (signal \($0))" } ?? "")\(timedOut ? " TIMED OUT" : "") after \(String(format: "%.1f", seconds)) s
            --- stdout ---
            \(stdout.suffix(6000))
            --- stderr ---
            \(stderr.suffix(6000))
            """
        }
    }

    struct HarnessError: Error, CustomStringConvertible {
        var description: String
    }

    /// The `ebft-dist` executable to test.
    static func binary() throws -> String {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["EBFT_DIST_BIN"], !env.isEmpty {
            guard fm.isExecutableFile(atPath: env) else {
                throw HarnessError(description: "EBFT_DIST_BIN=\(env) is not an executable file")
            }
            return env
        }
        // The test bundle lives in .build/<config>/ (on Linux it is the running executable).
        var candidates: [URL] = []
        if let exe = try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            candidates.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
        }
        for bundle in [Bundle.main] + Bundle.allBundles {
            candidates.append(bundle.bundleURL.deletingLastPathComponent())
            candidates.append(bundle.bundleURL)
        }
        for dir in candidates {
            let path = dir.appendingPathComponent("ebft-dist").path
            if fm.isExecutableFile(atPath: path) { return path }
        }
        throw HarnessError(description: """
            ebft-dist binary not found next to the test bundle (looked in \(Set(candidates.map(\.path)).sorted())); \
            build it first (swift build) or set EBFT_DIST_BIN
            """)
    }

    /// Runs `ebft-dist arguments…` under `mpirun -np np`.
    /// `monitor` is called about every 20 ms while the job runs (e.g. to kill one rank).
    static func run(np: Int, _ arguments: [String], timeout: Double = 60,
                    blasThreads: Int = 1, environment: [String: String] = [:],
                    monitor: (() -> Void)? = nil) throws -> Output {
        var command = ["mpirun", "-np", "\(np)"]
        if np > ProcessInfo.processInfo.activeProcessorCount { command.append("--oversubscribe") }
        command += ["-x", "OPENBLAS_NUM_THREADS"]
        for key in environment.keys.sorted() { command += ["-x", key] }
        command.append(try binary())
        command += arguments
        var env = environment
        env["OPENBLAS_NUM_THREADS"] = "\(blasThreads)"
        if getuid() == 0 {
            env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
            env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        }
        return try spawn(command, environment: env, timeout: timeout, monitor: monitor)
    }

    /// Runs `ebft-dist arguments…` directly (an MPI singleton when it initialises MPI).
    static func runDirect(_ arguments: [String], timeout: Double = 60,
                          environment: [String: String] = [:]) throws -> Output {
        try spawn([try binary()] + arguments, environment: environment, timeout: timeout)
    }

    /// The environment of this process without MPI's per-job variables, plus `extra`.
    static func childEnvironment(_ extra: [String: String]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment.filter { key, _ in
            !(key.hasPrefix("OMPI_") || key.hasPrefix("PMIX_"))
        }
        for (k, v) in extra { env[k] = v }
        return env
    }

    /// Spawns `command` (PATH lookup) in a new process group with stdout/stderr captured in
    /// temporary files, and waits for it for at most `timeout` seconds.
    static func spawn(_ command: [String], environment extra: [String: String], timeout: Double,
                      monitor: (() -> Void)? = nil) throws -> Output {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("ebft-e2e-\(getpid())-\(UInt64(Date().timeIntervalSince1970 * 1e6))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let outPath = dir.appendingPathComponent("stdout").path
        let errPath = dir.appendingPathComponent("stderr").path

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)  // its own group, so a timeout kills the ranks too

        let env = childEnvironment(extra).map { "\($0.key)=\($0.value)" }
        let argv = command.map { strdup($0) } + [nil]
        let envp = env.map { strdup($0) } + [nil]
        defer { (argv + envp).forEach { free($0) } }

        // posix_spawnp looks the program up in this process's PATH; the child gets `envp`.
        let start = Date()
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, command[0], &actions, &attributes, argv, envp)
        guard rc == 0 else {
            throw HarnessError(description: "cannot start \(command[0]): \(String(cString: strerror(rc)))")
        }

        var status: Int32 = 0
        var timedOut = false
        var killedAt: Date?
        while true {
            let w = waitpid(pid, &status, WNOHANG)
            if w == pid { break }
            if w < 0 && errno != EINTR { throw HarnessError(description: "waitpid: \(String(cString: strerror(errno)))") }
            let elapsed = Date().timeIntervalSince(start)
            if !timedOut && elapsed > timeout {
                timedOut = true
                killedAt = Date()
                kill(-pid, SIGTERM)
            } else if let k = killedAt, Date().timeIntervalSince(k) > 3 {
                kill(-pid, SIGKILL)
                killedAt = .distantFuture
            }
            monitor?()
            usleep(20_000)
        }
        if timedOut { kill(-pid, SIGKILL) }  // stragglers of the group

        let seconds = Date().timeIntervalSince(start)
        let read = { (path: String) in
            (try? Data(contentsOf: URL(fileURLWithPath: path))).map { String(decoding: $0, as: UTF8.self) } ?? ""
        }
        // Decode the wait status: low 7 bits = terminating signal (0: exited normally).
        let signal = status & 0x7f
        let exitCode = signal == 0 ? (status >> 8) & 0xff : 128 + signal
        return Output(command: command, exitCode: exitCode, signal: signal == 0 ? nil : signal,
                      timedOut: timedOut, stdout: read(outPath), stderr: read(errPath), seconds: seconds)
    }
}
