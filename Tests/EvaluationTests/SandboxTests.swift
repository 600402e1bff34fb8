import XCTest
import Foundation
#if canImport(Glibc)
import Glibc
#endif
@testable import Evaluation

/// Shared fixtures for sandbox tests: a private base directory and a sandbox with short limits.
enum SandboxFixture {
    static let uidBase: UInt32 = 3_800_000  // below the pid-derived default range

    static func makeBase() throws -> String {
        var t = Array("/tmp/ebft-sbx-tests-XXXXXX".utf8CString)
        guard let p = mkdtemp(&t) else { throw XCTSkip("mkdtemp failed") }
        let dir = String(cString: p)
        chmod(dir, 0o755)
        return dir
    }

    static func sandbox(base: String, wall: Double = 2, concurrency: Int = 2) throws -> Sandbox {
        guard getuid() == 0 else { throw XCTSkip("sandbox tests need root (namespaces, setuid)") }
        var limits = SandboxLimits()
        limits.wallSeconds = wall
        limits.cpuSeconds = 2
        return try Sandbox(configuration: SandboxConfiguration(
            limits: limits, baseDirectory: base, concurrency: concurrency, uidBase: uidBase))
    }

    /// Processes (anywhere on the machine) owned by the sandbox uids.
    static func leftoverProcesses(uids: ClosedRange<UInt32>) -> [String] {
        guard let pids = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        var found: [String] = []
        for p in pids where p.allSatisfy(\.isNumber) {
            guard let status = try? String(contentsOfFile: "/proc/\(p)/status", encoding: .utf8) else { continue }
            for line in status.split(separator: "\n") where line.hasPrefix("Uid:") {
                let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
                if fields.count > 1, let u = UInt32(fields[1]), uids.contains(u) { found.append(p) }
            }
        }
        return found
    }

    /// Waits (briefly) for the kernel to finish tearing down dead namespaces.
    static func waitNoLeftovers(uids: ClosedRange<UInt32>, seconds: Double = 3) -> [String] {
        let end = Date().addingTimeInterval(seconds)
        var left = leftoverProcesses(uids: uids)
        while !left.isEmpty && Date() < end {
            usleep(50_000)
            left = leftoverProcesses(uids: uids)
        }
        return left
    }
}

/// A TCP listener on 127.0.0.1 (host network namespace) that the sandbox must not reach.
final class LoopbackListener {
    let fd: Int32
    let port: UInt16
    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw XCTSkip("socket failed") }
        self.fd = fd
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0, listen(fd, 16) == 0 else { close(fd); throw XCTSkip("bind/listen failed") }
        var bound = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        self.port = UInt16(bigEndian: bound.sin_port)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }
    /// Accepts every pending connection; returns how many there were.
    func drainConnections() -> Int {
        var n = 0
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 { break }
            close(c)
            n += 1
        }
        return n
    }
    deinit { close(fd) }
}

final class SandboxTests: XCTestCase {
    var base = ""

    override func setUpWithError() throws {
        base = try SandboxFixture.makeBase()
    }

    override func tearDownWithError() throws {
        let left = (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []
        XCTAssertEqual(left, [], "per-run directories must be removed")
        try? FileManager.default.removeItem(atPath: base)
    }

    func testOutcomeKinds() throws {
        let sb = try SandboxFixture.sandbox(base: base)
        let cases: [(String, SandboxOutcome)] = [
            ("print('hello')", .passed),
            ("def f(:\n  pass", .failed(.syntax)),
            ("if True:\nprint(1)", .failed(.syntax)),
            ("x = 1/0", .failed(.runtime)),
            ("import sys; sys.exit(3)", .failed(.runtime)),
            ("assert 1 == 2, 'nope'", .failed(.assertion)),
            ("raise MemoryError()", .failed(.memory)),
            ("import ctypes; ctypes.string_at(0)", .failed(.killed)),  // a real segfault
        ]
        let results = sb.runAll(programs: cases.map(\.0))
        for (r, c) in zip(results, cases) {
            XCTAssertEqual(r.outcome, c.1, "\(c.0)\nstderr: \(r.stderr)")
        }
        XCTAssertEqual(results[0].stdout, "hello\n")
        XCTAssertEqual(results[4].exitStatus, 3)
        XCTAssertTrue(results[3].stderr.contains("ZeroDivisionError"))
    }

    func testProgramAndTestsAreConcatenated() throws {
        let sb = try SandboxFixture.sandbox(base: base)
        let ok = sb.run(program: "def add(a, b):\n    return a + b", tests: "assert add(2, 3) == 5")
        XCTAssertEqual(ok.outcome, .passed, ok.stderr)
        let bad = sb.run(program: "def add(a, b):\n    return a - b", tests: "assert add(2, 3) == 5")
        XCTAssertEqual(bad.outcome, .failed(.assertion))
    }

    func testRunsUnprivilegedInOwnWritableDirectory() throws {
        let sb = try SandboxFixture.sandbox(base: base)
        let r = sb.run(program: """
        import os, tempfile
        print(os.getuid(), os.getgid(), os.getgroups(), os.getpid())
        print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))
        open('scratch.txt', 'w').write('ok')
        with tempfile.NamedTemporaryFile() as f:
            f.write(b'x')
        print(open('scratch.txt').read())
        """)
        XCTAssertEqual(r.outcome, .passed, r.stderr)
        let first = r.stdout.split(separator: "\n").first.map(String.init) ?? ""
        let uid = UInt32(first.split(separator: " ").first ?? "") ?? 0
        XCTAssertTrue((SandboxFixture.uidBase...SandboxFixture.uidBase + 1).contains(uid), r.stdout)
        XCTAssertTrue(first.hasSuffix(" [] 1"), "no groups, PID 1 in its namespace: \(r.stdout)")
        XCTAssertEqual(r.stdout.split(separator: "\n").dropFirst().first, "[1]", "only its own process is visible")
        XCTAssertEqual(r.stdout.split(separator: "\n").last, "ok")
    }

    /// 4 jobs at a concurrency of 2: never more than 2 run at once, and 2 do run at once. Each
    /// job reports when it ran (the wall clock, which no namespace changes), so the verdict is
    /// about overlap, not about how fast a loaded machine starts processes.
    func testBoundedConcurrency() throws {
        let sb = try SandboxFixture.sandbox(base: base, concurrency: 2)
        let rs = sb.runAll(programs: Array(repeating: "import time; a = time.time(); time.sleep(1); print(a, time.time())",
                                           count: 4))
        XCTAssertTrue(rs.allSatisfy(\.passed))
        let spans = try rs.map { r -> (Double, Double) in
            let v = r.stdout.split(whereSeparator: \.isWhitespace).compactMap { Double($0) }
            XCTAssertEqual(v.count, 2, r.stdout)
            return (try XCTUnwrap(v.first), try XCTUnwrap(v.last))
        }
        // Most jobs running at one instant: count the spans open at each start.
        let most = spans.map { s in spans.filter { $0.0 <= s.0 && s.0 < $0.1 }.count }.max() ?? 0
        XCTAssertEqual(most, 2, "jobs ran \(spans)")
    }

    /// The hostile-snippet suite (issue 6): each snippet is contained, twice over, and the harness
    /// still runs a normal program afterwards.
    func testHostileSnippetsAreContained() throws {
        let sb = try SandboxFixture.sandbox(base: base, wall: 2)
        let uids = SandboxFixture.uidBase...SandboxFixture.uidBase + 1
        let marker = "ebft-\(UInt64.random(in: 1...UInt64.max))"

        // A directory and a file outside the sandbox, visible to it (not under /tmp or /run, which
        // the sandbox hides), that any user could write (0777 / 0666): only the read-only mount
        // namespace stops the program. The root-only secret lives there too, so only the uid
        // switch protects it.
        let outside = "/var/lib/ebft-sandbox-test-\(marker)"
        XCTAssertEqual(mkdir(outside, 0o777), 0)
        chmod(outside, 0o777)
        let victim = outside + "/victim.txt"
        try "original".write(toFile: victim, atomically: false, encoding: .utf8)
        chmod(victim, 0o666)
        // A root-owned secret that only root may read.
        let secretValue = "SECRET-\(UInt64.random(in: 1...UInt64.max))"
        let secretPath = outside + "/secret"
        try secretValue.write(toFile: secretPath, atomically: false, encoding: .utf8)
        chmod(secretPath, 0o600)
        // A world-readable file in the (hidden) host /tmp.
        let hiddenPath = base + "/hidden-\(marker)"
        let hiddenValue = "HIDDEN-\(UInt64.random(in: 1...UInt64.max))"
        try hiddenValue.write(toFile: hiddenPath, atomically: false, encoding: .utf8)
        chmod(hiddenPath, 0o644)
        defer {
            try? FileManager.default.removeItem(atPath: outside)
            try? FileManager.default.removeItem(atPath: hiddenPath)
        }
        let listener = try LoopbackListener()
        // Control: the listener is reachable from the host namespace.
        XCTAssertTrue(tcpConnects(port: listener.port), "control connection failed; the test would prove nothing")
        usleep(50_000)
        XCTAssertEqual(listener.drainConnections(), 1)

        let snippets: [(name: String, code: String, expect: Set<FailureKind>)] = [
            ("infinite loop", "while True:\n    pass", [.timeout]),
            ("sleeping forever", "import time\ntime.sleep(1000)", [.timeout]),
            ("fork bomb", """
            import os
            while True:
                try:
                    os.fork()
                except OSError:
                    pass
            """, [.timeout]),
            ("memory bomb", "x = bytearray(8 * 1024**3)", [.memory]),
            ("growing memory", "a = []\nwhile True:\n    a.append(bytes(32 * 2**20))", [.memory]),  // calloc: pages untouched, fast on a busy machine
            ("touching memory", "a = []\nwhile True:\n    a.append(b'x' * 2**20)", [.memory, .timeout]),
            ("write outside", "open('\(outside)/evil.txt', 'w').write('pwned')", [.runtime]),
            ("overwrite outside", "open('\(victim)', 'w').write('pwned')", [.runtime]),
            ("write to /tmp", "open('/tmp/evil-\(marker)', 'w').write('pwned')", [.runtime]),
            ("write to /dev/shm", "open('/dev/shm/evil-\(marker)', 'w').write('pwned')", [.runtime]),
            ("network", """
            import socket
            s = socket.create_connection(('127.0.0.1', \(listener.port)), timeout=1)
            s.sendall(b'hello')
            """, [.runtime]),
            ("read secret", "print(open('\(secretPath)').read())", [.runtime]),
            ("read host /tmp", "print(open('\(hiddenPath)').read())", [.runtime]),
            ("list host /tmp and /run", "import os\n# /run/mount: util-linux's mount bookkeeping, made inside the namespace\nprint(os.listdir('/tmp'), sorted(set(os.listdir('/run')) - {'mount'}), os.listdir('/dev/shm'))", []),
            ("read /etc/shadow", "print(open('/etc/shadow').read())", [.runtime]),
            ("setsid and sleep", "import os, time\nos.setsid()\ntime.sleep(1000)", [.timeout]),
            ("setsid, clear parent-death signal, sleep", """
            import ctypes, os, time
            os.setsid()
            ctypes.CDLL(None).prctl(1, 0, 0, 0, 0)  # PR_SET_PDEATHSIG = 1 → no signal
            time.sleep(1000)
            """, [.timeout]),
            ("escape via setsid child", """
            import os, time
            if os.fork() == 0:
                os.setsid()
                time.sleep(1000)
            print('parent leaves')
            """, []),
            ("disk bomb", "with open('big', 'wb') as f:\n    while True:\n        f.write(b'x' * 2**20)", [.runtime, .killed]),
            ("thread bomb", """
            import threading, time
            while True:
                threading.Thread(target=time.sleep, args=(100,), daemon=True).start()
            """, [.runtime]),
            ("become root", "import os\nos.setuid(0)", [.runtime]),
            ("signal everything", "import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass\nprint('still here')", []),
            ("stdout flood", "import sys\nline = 'x' * 999 + '\\n'\nfor _ in range(100_000):\n    sys.stdout.write(line)", [.runtime, .killed, .timeout]),
        ]
        for round in 0..<2 {
            let t0 = Date()
            let results = sb.runAll(programs: snippets.map(\.code))
            let dt = Date().timeIntervalSince(t0)
            for (s, r) in zip(snippets, results) {
                let context = "round \(round), \(s.name): \(r.outcome)\nstdout: \(r.stdout.prefix(300))\nstderr: \(r.stderr.suffix(600))"
                if s.expect.isEmpty {
                    XCTAssertEqual(r.outcome, .passed, context)
                } else {
                    XCTAssertTrue(r.failureKind.map(s.expect.contains) ?? false, context)
                }
                XCTAssertFalse(r.stdout.contains(secretValue) || r.stderr.contains(secretValue), context)
                XCTAssertFalse(r.stdout.contains(hiddenValue) || r.stderr.contains(hiddenValue), context)
                XCTAssertLessThan(r.wallSeconds, 2 + 1.0, context)
                XCTAssertLessThanOrEqual(r.stdout.utf8.count, sb.configuration.limits.maxOutputBytes + 100, context)
            }
            let byName = Dictionary(uniqueKeysWithValues: zip(snippets.map(\.name), results))
            XCTAssertTrue(byName["network"]!.stderr.contains("unreachable"), byName["network"]!.stderr)
            XCTAssertTrue(byName["read secret"]!.stderr.contains("PermissionError"), byName["read secret"]!.stderr)
            XCTAssertTrue(byName["write outside"]!.stderr.contains("Read-only file system"), byName["write outside"]!.stderr)
            XCTAssertTrue(byName["read host /tmp"]!.stderr.contains("FileNotFoundError"), byName["read host /tmp"]!.stderr)
            XCTAssertEqual(byName["list host /tmp and /run"]!.stdout, "[] ['ebft-sandbox'] []\n")
            XCTAssertTrue(byName["stdout flood"]!.stdoutTruncated)
            XCTAssertTrue(byName["stdout flood"]!.stdout.hasPrefix(String(repeating: "x", count: 999) + "\n"))
            XCTAssertLessThan(dt, 20)
            XCTAssertFalse(FileManager.default.fileExists(atPath: outside + "/evil.txt"))
            XCTAssertFalse(FileManager.default.fileExists(atPath: "/tmp/evil-\(marker)"))
            XCTAssertFalse(FileManager.default.fileExists(atPath: "/dev/shm/evil-\(marker)"))
            XCTAssertEqual(try String(contentsOfFile: victim, encoding: .utf8), "original")
            XCTAssertEqual(listener.drainConnections(), 0, "a sandboxed program reached the host loopback")
            XCTAssertEqual(SandboxFixture.waitNoLeftovers(uids: uids), [], "processes survived their sandbox")
        }
        // The harness keeps working.
        let normal = sb.run(program: "def f(x):\n    return x * 2", tests: "assert f(21) == 42\nprint('fine')")
        XCTAssertEqual(normal.outcome, .passed, normal.stderr)
        XCTAssertEqual(normal.stdout, "fine\n")
    }

    func testSelfTest() throws {
        let sb = try SandboxFixture.sandbox(base: base)
        XCTAssertNoThrow(try sb.selfTest())
        // A broken launch chain (here: an interpreter that is not Python) is a sandbox error.
        var config = sb.configuration
        config.python = "/bin/false"
        let broken = try Sandbox(configuration: config)
        XCTAssertThrowsError(try broken.selfTest()) { e in
            guard case SandboxError.selfTestFailed = e else { return XCTFail("\(e)") }
        }
    }

    func testClassifierParsesTracebacks() {
        XCTAssertEqual(Sandbox.lastExceptionName("Traceback (most recent call last):\n  File \"x\", line 1\nValueError: bad\n"), "ValueError")
        XCTAssertEqual(Sandbox.lastExceptionName("Traceback:\n  ...\nurllib.error.URLError: <urlopen error>\n"), "URLError")
        XCTAssertEqual(Sandbox.lastExceptionName("  File \"p.py\", line 2\n    x = (\n        ^\nSyntaxError: '(' was never closed\n"), "SyntaxError")
        XCTAssertEqual(Sandbox.lastExceptionName("AssertionError\n"), "AssertionError")
        XCTAssertNil(Sandbox.lastExceptionName("just some output\n"))
        XCTAssertEqual(Sandbox.classify(timedOut: true, exitStatus: 0, signal: nil, stderrTail: ""), .failed(.timeout))
        XCTAssertEqual(Sandbox.classify(timedOut: false, exitStatus: nil, signal: SIGXCPU, stderrTail: ""), .failed(.timeout))
        XCTAssertEqual(Sandbox.classify(timedOut: false, exitStatus: 1, signal: nil, stderrTail: "MemoryError\n"), .failed(.memory))
        XCTAssertEqual(Sandbox.classify(timedOut: false, exitStatus: 1, signal: nil, stderrTail: "setpriv: setresuid failed\n"), .failed(.sandboxError))
        XCTAssertEqual(Sandbox.classify(timedOut: false, exitStatus: 125, signal: nil, stderrTail: "ebft-sandbox-setup: tmpfs work dir\n"), .failed(.sandboxError))
    }
}

private func tcpConnects(port: UInt16) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = port.bigEndian
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let r = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    return r == 0
}
