import Foundation
import XCTest

/// The x86-64 build is compiled for x86-64-v3 (AVX2/FMA); on an older CPU it must say so before
/// running any of that code instead of dying with SIGILL (issue 10, portability).
final class CPUCheckEndToEndTests: XCTestCase {
    func testCPUWithoutAVX2AndFMAIsAClearErrorBeforeAnything() throws {
        #if EBFT_X86_64_V3
        // This machine has the features; the test hook makes the check treat two as missing.
        let out = try MPIRun.runDirect(["info"], timeout: 60,
                                       environment: ["EBFT_DIST_PRETEND_CPU_LACKS": "avx2,fma"])
        XCTAssertEqual(out.exitCode, 1, "\(out)")
        XCTAssertNil(out.signal, "\(out)")
        XCTAssertTrue(out.stderr.hasPrefix("error: this build of ebft-dist needs AVX2 and FMA"), "\(out)")
        XCTAssertTrue(out.stderr.contains("this CPU lacks: avx2, fma."), "\(out)")
        XCTAssertEqual(out.stdout, "", "nothing else ran")
        // Without the hook this CPU passes the check (the suite would not run otherwise).
        let ok = try MPIRun.runDirect(["--help"], timeout: 60)
        XCTAssertEqual(ok.exitCode, 0, "\(ok)")
        XCTAssertFalse(ok.stderr.contains("needs AVX2"), "\(ok)")
        #else
        throw XCTSkip("the CPU check is part of x86-64 builds with AVX2/FMA only (not aarch64, not EBFT_PORTABLE=1)")
        #endif
    }
}
