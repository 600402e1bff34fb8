// Sandbox: runs one untrusted Python program per call in a fresh, locked-down python3 process.
//
// Isolation (Linux, needs root to set up; the program itself runs unprivileged):
//   * `unshare --net --pid --fork --kill-child --mount --ipc --uts --mount-proc`:
//     a new network namespace (only a loopback interface, and it is down: every connect fails
//     with "Network is unreachable"), a new PID namespace (the program is PID 1 there; when it
//     exits or is killed the kernel kills every process it left behind), a private mount
//     namespace (mount changes below are invisible outside).
//   * inside that mount namespace: a size-limited tmpfs owned by the sandbox user becomes the
//     working directory /run/ebft-sandbox (the only writable place); /run, /tmp, /var/tmp and
//     /dev/shm are hidden behind empty tmpfs (the host's runtime files, sockets and scratch
//     files are invisible); every mount (/, /sys, …) is remounted read-only for this namespace
//     only.
//   * `prlimit`: RLIMIT_AS (memory), RLIMIT_CPU, RLIMIT_NPROC (fork bombs), RLIMIT_FSIZE
//     (files, including captured stdout/stderr), RLIMIT_NOFILE, no core files.
//   * `setpriv --reuid/--regid --clear-groups --no-new-privs`: the program runs as an
//     unprivileged uid with no supplementary groups, so root-owned 0600 files are unreadable.
//     Each concurrent slot has its own uid, so RLIMIT_NPROC is per run.
//   * the whole tree is started in a new session (POSIX_SPAWN_SETSID); on the wall-clock limit
//     the namespace's init (the program) is SIGKILLed directly — the kernel then kills every
//     process in its PID namespace — and so are the session and unshare; finally every process
//     of the slot's uid is killed (`kill -KILL -1` as that uid). Parent-death signals
//     (`setpriv --pdeathsig KILL` around unshare and again after the uid switch) tear the run
//     down if the caller dies.
//   * stdout/stderr go to root-owned files outside the working directory (no pipes, so large
//     outputs cannot deadlock us); we keep the head and tail of each.
//   * no inherited file descriptors beyond 0, 1, 2; stdin is /dev/null; the environment is
//     emptied (PATH, HOME, TMPDIR, LANG only) and Python runs with -I -B.
//
// Not contained: a program that clears its own parent-death signal and sleeps survives a
// *crashed* caller (the wall-clock kill needs the caller alive); CPU time spent is real (limited by RLIMIT_CPU and the wall clock); the program
// can read world-readable files (e.g. /etc/passwd, the Python stdlib, other world-readable
// data) — only files unreadable to an unprivileged user are protected; it can observe kernel
// information in /proc and /sys that any user sees.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Why a program failed.
public enum FailureKind: String, Sendable, Codable, CaseIterable {
    /// SyntaxError / IndentationError / TabError: the program did not compile.
    case syntax
    /// An uncaught exception other than AssertionError/MemoryError, or a non-zero exit.
    case runtime
    /// An uncaught AssertionError (a unit test failed).
    case assertion
    /// Wall-clock or CPU limit exceeded.
    case timeout
    /// MemoryError (address-space limit reached).
    case memory
    /// Killed by a signal for another reason (e.g. SIGSEGV, SIGKILL from outside).
    case killed
    /// The sandbox itself could not be set up for this run (see stderr). Not the program's fault.
    case sandboxError
}

public enum SandboxOutcome: Sendable, Equatable, CustomStringConvertible {
    case passed
    case failed(FailureKind)

    public var description: String {
        switch self {
        case .passed: return "passed"
        case .failed(let k): return "failed(\(k.rawValue))"
        }
    }
}

public struct SandboxResult: Sendable {
    public var outcome: SandboxOutcome
    /// Exit status when the process exited normally.
    public var exitStatus: Int32?
    /// Terminating signal when it was killed by one.
    public var signal: Int32?
    /// Captured output; when longer than the limit, head and tail with a marker in between.
    public var stdout: String
    public var stderr: String
    public var stdoutTruncated: Bool
    public var stderrTruncated: Bool
    /// Wall-clock time from spawn to reap, in seconds.
    public var wallSeconds: Double

    public var passed: Bool { outcome == .passed }
    public var failureKind: FailureKind? {
        if case .failed(let k) = outcome { return k }
        return nil
    }
}

public struct SandboxLimits: Sendable, Equatable {
    /// Wall-clock limit; the whole process tree is killed when it is reached.
    public var wallSeconds: Double = 3
    /// RLIMIT_CPU in seconds (whole seconds, at least 1).
    public var cpuSeconds: Int = 3
    /// RLIMIT_AS in bytes.
    public var memoryBytes: Int = 512 << 20
    /// RLIMIT_NPROC: processes (threads count too) of the sandbox uid.
    public var maxProcesses: Int = 64
    /// RLIMIT_FSIZE: largest file the program may write, stdout/stderr included.
    public var maxFileBytes: Int = 16 << 20
    /// Size of the tmpfs working directory.
    public var workDirBytes: Int = 64 << 20
    /// How much of stdout and of stderr is kept (head + tail).
    public var maxOutputBytes: Int = 64 << 10

    public init() {}
    public init(wallSeconds: Double = 3, cpuSeconds: Int = 3, memoryBytes: Int = 512 << 20,
                maxProcesses: Int = 64, maxFileBytes: Int = 16 << 20,
                workDirBytes: Int = 64 << 20, maxOutputBytes: Int = 64 << 10) {
        self.wallSeconds = wallSeconds
        self.cpuSeconds = cpuSeconds
        self.memoryBytes = memoryBytes
        self.maxProcesses = maxProcesses
        self.maxFileBytes = maxFileBytes
        self.workDirBytes = workDirBytes
        self.maxOutputBytes = maxOutputBytes
    }
}

public struct SandboxConfiguration: Sendable {
    /// The interpreter. Must be runnable by an unprivileged user (a pyenv shim under /root is not).
    public var python: String = "/usr/bin/python3"
    public var limits = SandboxLimits()
    /// Where per-run directories are created (root-owned, mode 0711).
    public var baseDirectory: String = "/tmp"
    /// Concurrent runs; each holds one slot with its own uid `uidBase + slot`.
    public var concurrency: Int = 2
    /// First unprivileged uid/gid used for sandboxed programs (no passwd entry needed); slot i
    /// runs as `uidBase + i`. The default is derived from the process id so that sandboxes of
    /// different processes on one machine (e.g. MPI ranks) do not share uids and hence
    /// RLIMIT_NPROC budgets.
    public var uidBase: UInt32 = SandboxConfiguration.defaultUIDBase()

    /// 3_900_000 + 16 · (pid mod 100_000): unique per live process, at most 16 slots each.
    public static func defaultUIDBase() -> UInt32 {
        3_900_000 + 16 * UInt32(getpid() % 100_000)
    }

    public init() {}
    public init(python: String = "/usr/bin/python3", limits: SandboxLimits = SandboxLimits(),
                baseDirectory: String = "/tmp", concurrency: Int = 2,
                uidBase: UInt32 = SandboxConfiguration.defaultUIDBase()) {
        self.python = python
        self.limits = limits
        self.baseDirectory = baseDirectory
        self.concurrency = concurrency
        self.uidBase = uidBase
    }
}

public enum SandboxError: Error, LocalizedError, Equatable {
    case notRoot(uid: UInt32)
    case toolMissing(String)
    case pythonMissing(String)
    case invalidConfiguration(String)
    case selfTestFailed(String)

    public var errorDescription: String? {
        switch self {
        case .notRoot(let uid):
            return "the code sandbox needs root to create namespaces and drop to an unprivileged uid "
                + "(running as uid \(uid)); run the evaluation as root (e.g. in the CI container)"
        case .toolMissing(let t):
            return "the code sandbox needs \(t) (apt package util-linux); run scripts/install-deps.sh"
        case .pythonMissing(let p):
            return "no executable Python interpreter at \(p) (apt package python3; it must be "
                + "runnable by an unprivileged user, so not a pyenv shim under /root)"
        case .invalidConfiguration(let m):
            return "invalid sandbox configuration: \(m)"
        case .selfTestFailed(let m):
            return "the code sandbox does not work on this machine (a trivial program failed): \(m)"
        }
    }
}

/// Thread-safe; `run` blocks until one of `concurrency` slots is free.
public final class Sandbox: @unchecked Sendable {
    public let configuration: SandboxConfiguration
    private let slotLock = NSCondition()
    private var freeSlots: [Int]
    private static let tools = ["/usr/bin/unshare", "/usr/bin/prlimit", "/usr/bin/setpriv"]
    static let setupMarker = "ebft-sandbox-setup:"

    public init(configuration: SandboxConfiguration = SandboxConfiguration()) throws {
        let c = configuration
        guard c.concurrency >= 1 else { throw SandboxError.invalidConfiguration("concurrency must be ≥ 1") }
        guard c.limits.wallSeconds > 0, c.limits.cpuSeconds >= 1, c.limits.memoryBytes >= 64 << 20,
              c.limits.maxProcesses >= 1, c.limits.maxFileBytes >= 4096, c.limits.workDirBytes >= 4096,
              c.limits.maxOutputBytes >= 256
        else { throw SandboxError.invalidConfiguration("limits out of range: \(c.limits)") }
        guard c.uidBase >= 1000, c.uidBase < UInt32.max - 1 - UInt32(c.concurrency) else {
            throw SandboxError.invalidConfiguration("uidBase \(c.uidBase) must be an unprivileged uid")
        }
        let uid = getuid()
        guard uid == 0 else { throw SandboxError.notRoot(uid: uid) }
        for t in Self.tools where access(t, X_OK) != 0 { throw SandboxError.toolMissing(t) }
        guard access(c.python, X_OK) == 0 else { throw SandboxError.pythonMissing(c.python) }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: c.baseDirectory, isDirectory: &isDir), isDir.boolValue else {
            throw SandboxError.invalidConfiguration("base directory \(c.baseDirectory) does not exist")
        }
        let resolvedBase = URL(fileURLWithPath: c.baseDirectory).resolvingSymlinksInPath().path
        guard resolvedBase != "/run", !resolvedBase.hasPrefix("/run/") else {
            throw SandboxError.invalidConfiguration("base directory must not lie under /run (the sandbox hides /run)")
        }
        self.configuration = c
        self.freeSlots = Array((0..<c.concurrency).reversed())
    }

    /// Runs `program` followed by `tests` (concatenated into one file) in a fresh sandbox.
    /// Never throws: infrastructure problems come back as `.failed(.sandboxError)`.
    public func run(program: String, tests: String = "") -> SandboxResult {
        let slot = acquireSlot()
        defer { releaseSlot(slot) }
        let source = tests.isEmpty ? program : program + "\n\n" + tests + "\n"
        return runInSlot(source: source, uid: configuration.uidBase + UInt32(slot))
    }

    /// Checks that sandboxed programs actually run, unprivileged and without network; call it
    /// once before an evaluation so that a broken setup fails loudly instead of scoring 0.
    public func selfTest() throws {
        let r = run(program: """
        import os, socket
        assert os.getuid() != 0 and os.geteuid() != 0, "running as root"
        try:
            socket.create_connection(("127.0.0.1", 9), timeout=1)
            raise SystemExit("network reachable")
        except OSError:
            pass
        print("sandbox-ok")
        """)
        guard r.passed, r.stdout == "sandbox-ok\n" else {
            throw SandboxError.selfTestFailed("\(r.outcome): \(r.stderr.suffix(1000))")
        }
    }

    /// Runs many (program, tests) pairs, `concurrency` at a time; results in input order.
    public func runAll(_ jobs: [(program: String, tests: String)]) -> [SandboxResult] {
        if jobs.isEmpty { return [] }
        let results = ResultBox(count: jobs.count)
        let next = Counter()
        let workers = min(configuration.concurrency, jobs.count)
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while true {
                let i = next.increment()
                if i >= jobs.count { break }
                results.set(i, run(program: jobs[i].program, tests: jobs[i].tests))
            }
        }
        return results.values()
    }

    /// Convenience: programs without separate tests.
    public func runAll(programs: [String]) -> [SandboxResult] {
        runAll(programs.map { (program: $0, tests: "") })
    }

    // MARK: - slots

    private func acquireSlot() -> Int {
        slotLock.lock()
        while freeSlots.isEmpty { slotLock.wait() }
        let s = freeSlots.removeLast()
        slotLock.unlock()
        return s
    }

    private func releaseSlot(_ s: Int) {
        slotLock.lock()
        freeSlots.append(s)
        slotLock.signal()
        slotLock.unlock()
    }

    // MARK: - one run

    // Runs as root inside the new namespaces; `exec`s into the limited, unprivileged python.
    // Arguments: $1 run dir, $2 uid, $3 AS, $4 CPU, $5 NPROC, $6 FSIZE, $7 tmpfs size, $8 python.
    static let namespaceScript = #"""
    fail() { echo "ebft-sandbox-setup: $*" >&2; exit 125; }
    H="$1"; U="$2"; W=/run/ebft-sandbox
    mount -t tmpfs -o "size=$7,mode=0700,uid=$U,gid=$U,nosuid,nodev" ebft-sbx-work "$H/work" || fail "tmpfs work dir"
    cp "$H/program.py" "$H/work/program.py" && chown "$U:$U" "$H/work/program.py" || fail "copy program"
    # Hide the host's runtime and scratch directories behind empty tmpfs; the work dir moves to /run.
    mount -t tmpfs -o size=64k,mode=0755,nosuid,nodev,noexec ebft-sbx-run /run || fail "tmpfs /run"
    mkdir "$W" && mount --move "$H/work" "$W" || fail "move work dir"
    for d in /tmp /var/tmp /dev/shm; do
      [ -d "$d" ] || continue
      mount -t tmpfs -o size=4k,mode=0755,nosuid,nodev,noexec ebft-sbx-empty "$d" || fail "tmpfs $d"
    done
    # Every other mount read-only (per-mount flag, this namespace only).
    for m in $(awk '{print $2}' /proc/self/mounts | sort -u); do
      case "$m" in /proc|/proc/*|"$W"|/dev|/dev/pts) continue;; esac
      if ! mount -o remount,bind,ro "$m" 2>/dev/null; then
        [ "$m" = / ] && fail "cannot make / read-only"
      fi
    done
    cd "$W" || fail "cd"
    exec /usr/bin/prlimit --as="$3" --cpu="$4" --nproc="$5" --fsize="$6" --core=0 --nofile=256 -- \
      /usr/bin/setpriv --reuid="$U" --regid="$U" --clear-groups --no-new-privs -- \
      /usr/bin/setpriv --pdeathsig KILL -- \
      /usr/bin/env -i PATH=/usr/bin:/bin HOME="$W" TMPDIR="$W" LANG=C.UTF-8 \
      "$8" -I -B program.py
    """#

    private func runInSlot(source: String, uid: UInt32) -> SandboxResult {
        let lim = configuration.limits
        let start = monotonicSeconds()
        func infraFailure(_ message: String) -> SandboxResult {
            SandboxResult(outcome: .failed(.sandboxError), exitStatus: nil, signal: nil, stdout: "",
                          stderr: "\(Self.setupMarker) \(message)", stdoutTruncated: false,
                          stderrTruncated: false, wallSeconds: monotonicSeconds() - start)
        }
        // Per-run directory: root-owned 0711 (the sandbox user may traverse it but not list it);
        // holds program.py (root-only copy), stdout/stderr files and the empty mount point `work`.
        var template = Array((configuration.baseDirectory + "/ebft-sandbox-XXXXXX").utf8CString)
        guard let dirPtr = mkdtemp(&template) else {
            return infraFailure("mkdtemp in \(configuration.baseDirectory): \(String(cString: strerror(errno)))")
        }
        let dir = String(cString: dirPtr)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        chmod(dir, 0o711)
        let work = dir + "/work", outPath = dir + "/stdout", errPath = dir + "/stderr"
        guard mkdir(work, 0o700) == 0 else { return infraFailure("mkdir \(work)") }
        do {
            try Data(source.utf8).write(to: URL(fileURLWithPath: dir + "/program.py"))
        } catch {
            return infraFailure("writing program: \(error)")
        }
        // setpriv --pdeathsig: if this thread (hence the caller) dies, unshare is killed, and with
        // it the namespace's init (whose own parent-death signal is re-armed after the uid switch,
        // which clears it).
        let argv = ["/usr/bin/setpriv", "--pdeathsig", "KILL", "--",
                    "/usr/bin/unshare", "--net", "--pid", "--fork", "--kill-child", "--mount",
                    "--ipc", "--uts", "--mount-proc", "--", "/bin/sh", "-c", Self.namespaceScript,
                    "ebft-sandbox", dir, String(uid), String(lim.memoryBytes), String(lim.cpuSeconds),
                    String(lim.maxProcesses), String(lim.maxFileBytes), String(lim.workDirBytes),
                    configuration.python]
        let env = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"]
        let pid: pid_t
        switch spawn(argv: argv, env: env, stdoutPath: outPath, stderrPath: errPath) {
        case .success(let p): pid = p
        case .failure(let message): return infraFailure(message)
        }

        // Reap with a deadline; on expiry kill the namespace's init, the session and unshare.
        let deadline = start + lim.wallSeconds
        var status: Int32 = 0
        var timedOut = false
        var sleepMicros: UInt32 = 500
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0 && errno != EINTR {
                // E.g. ECHILD when the host process ignores SIGCHLD: we cannot observe the run, so
                // tear it down and report the sandbox (not the program) as broken.
                let message = "waitpid: \(String(cString: strerror(errno)))"
                for child in Self.children(of: pid) { kill(child, SIGKILL) }
                kill(-pid, SIGKILL)
                kill(pid, SIGKILL)
                Self.killAllProcesses(ofUID: uid)
                return infraFailure(message)
            }
            if monotonicSeconds() >= deadline {
                timedOut = true
                // The program may have left our session (setsid) and cleared its parent-death
                // signal, so kill the namespace's init directly (the kernel then kills everything
                // in the PID namespace), then unshare, then sweep the slot's uid.
                for child in Self.children(of: pid) { kill(child, SIGKILL) }
                kill(-pid, SIGKILL)
                kill(pid, SIGKILL)
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                Self.killAllProcesses(ofUID: uid)
                break
            }
            usleep(sleepMicros)
            sleepMicros = min(sleepMicros * 2, 10_000)
        }
        // Nothing of the program survives: it all lived in the PID namespace, whose init (the
        // program) is gone. (No kill(-pid) here: after reaping, the pid may be reused.)
        let wall = monotonicSeconds() - start

        let (out, outTrunc) = Self.readCapped(outPath, limit: lim.maxOutputBytes)
        let (err, errTrunc) = Self.readCapped(errPath, limit: lim.maxOutputBytes)
        let errTail = Self.readTail(errPath, bytes: 8192)

        var exitStatus: Int32? = nil
        var signal: Int32? = nil
        if wifexited(status) { exitStatus = wexitstatus(status) } else if wifsignaled(status) { signal = wtermsig(status) }

        let outcome = Self.classify(timedOut: timedOut, exitStatus: exitStatus, signal: signal, stderrTail: errTail)
        return SandboxResult(outcome: outcome, exitStatus: exitStatus, signal: signal, stdout: out, stderr: err,
                             stdoutTruncated: outTrunc, stderrTruncated: errTrunc, wallSeconds: wall)
    }

    /// Direct children of `pid` (from /proc; empty when unavailable).
    static func children(of pid: pid_t) -> [pid_t] {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8) else { return [] }
        return text.split(separator: " ").compactMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// kill(-1, SIGKILL) as `uid`: every process of that uid on the machine (each slot has its
    /// own uid, so this only hits this run's leftovers). Bounded wait; never throws.
    static func killAllProcesses(ofUID uid: UInt32) {
        let argv = ["/usr/bin/setpriv", "--reuid=\(uid)", "--regid=\(uid)", "--clear-groups", "--",
                    "/bin/kill", "-KILL", "-1"]
        guard case .success(let p) = spawn(argv: argv, env: ["PATH=/usr/bin:/bin"],
                                           stdoutPath: "/dev/null", stderrPath: "/dev/null") else { return }
        let end = monotonicSeconds() + 2
        var st: Int32 = 0
        while waitpid(p, &st, WNOHANG) == 0 {
            if monotonicSeconds() > end { kill(p, SIGKILL); _ = waitpid(p, &st, 0); return }
            usleep(2000)
        }
    }

    /// Maps how the process ended (and the last exception line of stderr) to an outcome.
    static func classify(timedOut: Bool, exitStatus: Int32?, signal: Int32?, stderrTail: String) -> SandboxOutcome {
        if timedOut { return .failed(.timeout) }
        if let s = signal {
            if s == SIGXCPU { return .failed(.timeout) }
            return .failed(.killed)
        }
        guard let code = exitStatus else { return .failed(.killed) }
        if code == 0 { return .passed }
        if code == 125 && stderrTail.contains(setupMarker) { return .failed(.sandboxError) }
        // The launch chain (prlimit → setpriv → env) failed before Python ran.
        if code != 0, ["prlimit:", "setpriv:", "env:", "unshare:"].contains(where: { stderrTail.hasPrefix($0) }) {
            return .failed(.sandboxError)
        }
        let name = lastExceptionName(stderrTail)
        switch name {
        case "SyntaxError", "IndentationError", "TabError": return .failed(.syntax)
        case "AssertionError": return .failed(.assertion)
        case "MemoryError": return .failed(.memory)
        default:
            if stderrTail.contains("Fatal Python error") && stderrTail.contains("memory") { return .failed(.memory) }
            return .failed(.runtime)
        }
    }

    /// The exception class of the last traceback line (`ValueError: …` → `ValueError`,
    /// `module.Error: …` → `Error`), or nil.
    static func lastExceptionName(_ stderr: String) -> String? {
        for line in stderr.split(separator: "\n", omittingEmptySubsequences: true).reversed() {
            guard let first = line.first, !first.isWhitespace else { continue }
            let head = line.prefix { $0 != ":" }
            let name = head.split(separator: ".").last.map(String.init) ?? String(head)
            if !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }),
               name.first!.isUppercase {
                return name
            }
            return nil
        }
        return nil
    }

    static func readCapped(_ path: String, limit: Int) -> (String, Bool) {
        guard let h = FileHandle(forReadingAtPath: path) else { return ("", false) }
        defer { try? h.close() }
        let size = Int((try? h.seekToEnd()) ?? 0)
        try? h.seek(toOffset: 0)
        if size <= limit {
            let d = (try? h.readToEnd()) ?? Data()
            return (String(decoding: d, as: UTF8.self), false)
        }
        let half = limit / 2
        let head = (try? h.read(upToCount: half)) ?? Data()
        try? h.seek(toOffset: UInt64(size - half))
        let tail = (try? h.read(upToCount: half)) ?? Data()
        let text = String(decoding: head, as: UTF8.self)
            + "\n…[\(size - 2 * half) bytes truncated]…\n"
            + String(decoding: tail, as: UTF8.self)
        return (text, true)
    }

    static func readTail(_ path: String, bytes: Int) -> String {
        guard let h = FileHandle(forReadingAtPath: path) else { return "" }
        defer { try? h.close() }
        let size = Int((try? h.seekToEnd()) ?? 0)
        try? h.seek(toOffset: UInt64(max(0, size - bytes)))
        return String(decoding: (try? h.readToEnd()) ?? Data(), as: UTF8.self)
    }
}

// MARK: - process plumbing

private enum SpawnResult { case success(pid_t), failure(String) }

private func spawn(argv: [String], env: [String], stdoutPath: String, stderrPath: String) -> SpawnResult {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    // Close every other inherited descriptor (glibc ≥ 2.34; not exported to Swift, so via dlsym).
    if let closeFrom = addCloseFrom { _ = closeFrom(&actions, 3) }

    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    var noSignals = sigset_t(); sigemptyset(&noSignals)
    var allSignals = sigset_t(); sigfillset(&allSignals)
    posix_spawnattr_setsigmask(&attr, &noSignals)
    posix_spawnattr_setsigdefault(&attr, &allSignals)
    posix_spawnattr_setflags(&attr, Int16(posixSpawnSetsid | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

    let cArgv = argv.map { strdup($0) } + [nil]
    let cEnv = env.map { strdup($0) } + [nil]
    defer { cArgv.forEach { free($0) }; cEnv.forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, argv[0], &actions, &attr, cArgv, cEnv)
    if rc != 0 { return .failure("posix_spawn \(argv[0]): \(String(cString: strerror(rc)))") }
    return .success(pid)
}

private let posixSpawnSetsid: Int32 = 0x80  // POSIX_SPAWN_SETSID (glibc, <spawn.h>)

private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
private let addCloseFrom: AddCloseFrom? = {
    guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np")
    else { return nil }
    return unsafeBitCast(sym, to: AddCloseFrom.self)
}()

private func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

// wait(2) status macros (not importable from Glibc as functions).
private func wifexited(_ s: Int32) -> Bool { (s & 0x7f) == 0 }
private func wexitstatus(_ s: Int32) -> Int32 { (s >> 8) & 0xff }
private func wifsignaled(_ s: Int32) -> Bool { ((s & 0x7f) + 1) >> 1 > 0 && (s & 0x7f) != 0x7f }
private func wtermsig(_ s: Int32) -> Int32 { s & 0x7f }

private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func increment() -> Int {
        lock.lock(); defer { lock.unlock() }
        let v = value
        value += 1
        return v
    }
}

private final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [SandboxResult?]
    init(count: Int) { items = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ r: SandboxResult) { lock.lock(); items[i] = r; lock.unlock() }
    func values() -> [SandboxResult] { lock.lock(); defer { lock.unlock() }; return items.map { $0! } }
}
