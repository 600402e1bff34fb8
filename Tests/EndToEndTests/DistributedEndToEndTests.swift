import XCTest

/// The distributed CLI subcommands under real `mpirun`: every rank's output is checked.
final class DistributedEndToEndTests: XCTestCase {
    /// "[rank 2/4] OK   allreduce-sum-float" → (2, 4, "allreduce-sum-float")
    private func okLines(_ out: MPIRun.Output) -> [(rank: Int, size: Int, check: String)] {
        out.lines.compactMap { line in
            guard line.hasPrefix("[rank "), let close = line.firstIndex(of: "]") else { return nil }
            let ids = line[line.index(line.startIndex, offsetBy: 6)..<close].split(separator: "/")
            let rest = line[line.index(after: close)...].split(separator: " ")
            guard ids.count == 2, let r = Int(ids[0]), let n = Int(ids[1]), rest.count == 2, rest[0] == "OK" else { return nil }
            return (r, n, String(rest[1]))
        }
    }

    /// Runs selftest on `np` ranks; every rank must report OK for every check, and nothing else.
    private func checkSelftest(np: Int, viaMPIRun: Bool = true, environment: [String: String] = [:]) throws {
        let out = viaMPIRun ? try MPIRun.run(np: np, ["selftest"], timeout: 90, environment: environment)
                            : try MPIRun.runDirect(["selftest"], timeout: 60)
        XCTAssertTrue(out.succeeded, "\(out)")
        XCTAssertFalse(out.stdout.contains("FAIL"), "\(out)")
        let summary = out.lines.first { $0.hasPrefix("selftest: ") }
        let prefix = "selftest: "
        guard let summary, let checks = Int(summary.dropFirst(prefix.count).split(separator: " ")[0]) else {
            return XCTFail("no summary line\n\(out)")
        }
        XCTAssertEqual(summary, "selftest: \(checks) checks × \(np) ranks: all OK")
        XCTAssertGreaterThanOrEqual(checks, 18, "the selftest lost checks")
        let oks = okLines(out)
        XCTAssertEqual(oks.count, checks * np, "\(out)")
        XCTAssertTrue(oks.allSatisfy { $0.size == np }, "\(out)")
        let namesByRank = Dictionary(grouping: oks, by: \.rank).mapValues { Set($0.map(\.check)) }
        XCTAssertEqual(namesByRank.keys.sorted(), Array(0..<np))
        for (rank, names) in namesByRank {
            XCTAssertEqual(names.count, checks, "rank \(rank) repeated or missed a check\n\(out)")
            XCTAssertEqual(names, namesByRank[0], "rank \(rank) ran different checks")
        }
        for expected in ["allreduce-sum-float", "allreduce-max-double", "allreduce-sum-int", "broadcast-bytes-checksum",
                         "allgather-bytes", "split-even-odd", "p2p-ring", "probe-any-source", "allreduce-chunked"] {
            XCTAssertTrue(namesByRank[0]?.contains(expected) ?? false, "missing check \(expected)")
        }
    }

    func testSelftestOnTwoRanks() throws { try checkSelftest(np: 2) }
    func testSelftestOnThreeRanks() throws { try checkSelftest(np: 3) }
    func testSelftestOnFourRanks() throws { try checkSelftest(np: 4) }
    /// The broadcast ebft-dist pins for jobs across hosts (`MPIRuntime.collectiveDefaults`), here
    /// on one host with 64 KiB segments so that each 1 MiB call of the checksum broadcast is a
    /// pipeline of 16 segments through 3 ranks.
    func testSelftestWithThePipelinedBroadcastOfSeveralHosts() throws {
        try checkSelftest(np: 3, environment: ["OMPI_MCA_coll_tuned_use_dynamic_rules": "1",
                                               "OMPI_MCA_coll_tuned_bcast_algorithm": "3",
                                               "OMPI_MCA_coll_tuned_bcast_algorithm_segmentsize": "65536"])
    }
    func testSelftestWithoutMPIRunIsASingleton() throws { try checkSelftest(np: 1, viaMPIRun: false) }

    func testInfoListsEveryRankWithItsRole() throws {
        let out = try MPIRun.run(np: 3, ["info"], timeout: 60)
        XCTAssertTrue(out.succeeded, "\(out)")
        let rankLines = out.lines.filter { $0.hasPrefix("[rank ") }
        XCTAssertEqual(rankLines.count, 3, "\(out)")
        let expectedRoles = ["learner", "rollout-worker", "rollout-worker"]
        for (i, line) in rankLines.enumerated() {
            XCTAssertTrue(line.hasPrefix("[rank \(i)/3] role \(expectedRoles[i]) "), "line \(i) out of order or wrong role: \(line)")
            XCTAssertTrue(line.contains("blas-threads 1"), line)
            XCTAssertTrue(line.contains("openblas OpenBLAS"), line)
            XCTAssertEqual(line.contains("sends-to 0"), i > 0, line)
        }
        XCTAssertTrue(out.stdout.contains("learners [0], rollout workers [1, 2]"), "\(out)")
    }

    func testInfoWithColocateMakesEveryRankBoth() throws {
        let out = try MPIRun.run(np: 2, ["info", "--colocate"], timeout: 60)
        XCTAssertTrue(out.succeeded, "\(out)")
        XCTAssertEqual(out.lines.filter { $0.contains("] role both ") }.count, 2, "\(out)")
    }

    func testImpossibleRoleRequestIsACleanErrorOnRankZero() throws {
        let out = try MPIRun.run(np: 2, ["info", "--learners", "2"], timeout: 60)
        XCTAssertFalse(out.timedOut, "\(out)")
        XCTAssertNil(out.signal, "\(out)")
        XCTAssertEqual(out.exitCode, 2, "\(out)")
        XCTAssertTrue(out.stderr.contains("error: --learners 2 leaves no rollout worker among 2 ranks"), "\(out)")
        XCTAssertFalse(out.stdout.contains("[rank "), "\(out)")
    }

    /// A receive that expects the wrong size: a Swift error naming sizes, source and tag,
    /// and a non-zero exit — no crash, no signal, no hang.
    func testWrongSizeReceiveUnderMPIRunIsACleanError() throws {
        let out = try MPIRun.run(np: 2, ["selftest", "--inject-error", "recv-size"], timeout: 60)
        XCTAssertFalse(out.timedOut, "\(out)")
        XCTAssertNil(out.signal, "\(out)")
        XCTAssertEqual(out.exitCode, 1, "\(out)")
        XCTAssertTrue(out.stderr.contains(
            "[rank 0/2] error: receive: expected a message of 20 bytes from rank 1 (tag 9) but it has 10 bytes"), "\(out)")
        XCTAssertFalse(out.stderr.contains("signal"), "\(out)")
    }

    /// MPI itself rejects the destination; the Swift error carries MPI's text on every rank.
    func testMPIErrorUnderMPIRunCarriesMPIsOwnText() throws {
        let out = try MPIRun.run(np: 3, ["selftest", "--inject-error", "bad-rank"], timeout: 60)
        XCTAssertFalse(out.timedOut, "\(out)")
        XCTAssertNil(out.signal, "\(out)")
        XCTAssertEqual(out.exitCode, 1, "\(out)")
        for r in 0..<3 {
            XCTAssertTrue(out.stderr.contains("[rank \(r)/3] error: MPI_Send(3 bytes to rank 3, tag 1) failed: MPI_ERR_RANK"), "\(out)")
        }
    }

    /// Smoke test of the benchmark's table (not a measurement).
    func testBenchCommPrintsATableRowPerSize() throws {
        let out = try MPIRun.run(np: 2, ["bench", "comm", "--max-size", "16K", "--seconds", "0.01", "--batches", "1"], timeout: 60)
        XCTAssertTrue(out.succeeded, "\(out)")
        let rows = out.lines.filter { $0.hasPrefix("1 KiB") || $0.hasPrefix("4 KiB") || $0.hasPrefix("16 KiB") }
        XCTAssertEqual(rows.count, 3, "\(out)")
        for row in rows { XCTAssertEqual(row.split(separator: " ").count, 2 + 5, row) }  // size, unit, 5 numbers
    }

    /// A process that called MPI_Init carries OMPI_*/PMIX_* variables (e.g. OMPI_MCA_ess=singleton);
    /// an mpirun inheriting them exits 1 silently. The harness must strip them.
    func testHarnessStripsInheritedMPIJobVariables() throws {
        setenv("OMPI_MCA_ess", "singleton", 1)
        setenv("PMIX_RANK", "0", 1)
        defer { unsetenv("OMPI_MCA_ess"); unsetenv("PMIX_RANK") }
        XCTAssertEqual(ProcessInfo.processInfo.environment["OMPI_MCA_ess"], "singleton")
        XCTAssertNil(MPIRun.childEnvironment([:])["OMPI_MCA_ess"])
        XCTAssertNil(MPIRun.childEnvironment([:])["PMIX_RANK"])
        let out = try MPIRun.run(np: 2, ["info"], timeout: 60)
        XCTAssertTrue(out.succeeded, "\(out)")
        XCTAssertEqual(out.lines.filter { $0.hasPrefix("[rank ") }.count, 2, "\(out)")
    }

    /// The harness's timeout ends the whole job (mpirun and its ranks) and says so.
    func testHarnessTimeoutKillsTheJob() throws {
        let out = try MPIRun.spawn(["sh", "-c", "sleep 30 & sleep 30; echo never"], environment: [:], timeout: 0.5)
        XCTAssertTrue(out.timedOut)
        XCTAssertFalse(out.succeeded)
        XCTAssertLessThan(out.seconds, 10)
        XCTAssertFalse(out.stdout.contains("never"))
    }
}
