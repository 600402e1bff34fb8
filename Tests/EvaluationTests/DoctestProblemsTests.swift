import Evaluation
import XCTest

final class DoctestProblemsTests: XCTestCase {
    func testModuleNames() {
        XCTAssertEqual(DoctestProblems.moduleName(relativePath: "statistics.py"), "statistics")
        XCTAssertEqual(DoctestProblems.moduleName(relativePath: "http/cookiejar.py"), "http.cookiejar")
        XCTAssertEqual(DoctestProblems.moduleName(relativePath: "json/__init__.py"), "json")
        XCTAssertNil(DoctestProblems.moduleName(relativePath: "lib2to3/tests/data/bom-x.py"))
        XCTAssertNil(DoctestProblems.moduleName(relativePath: "README"))
    }

    /// The real stdlib: enough sound problems; every kept canonical body passes, a wrong body
    /// (returning None, or the body of another problem) fails; nothing from HumanEval.
    func testStdlibDoctestProblemsAreSound() throws {
        let all = try DoctestProblems.load()
        XCTAssertGreaterThan(all.train.count + all.test.count, 60)
        let sandbox = try Sandbox()
        let sound = DoctestProblems.keepSound(all.train + all.test, sandbox: sandbox)
        print("doctest problems: \(all.train.count) train + \(all.test.count) test, sound: \(sound.count): \(sound.map(\.problem.taskID))")
        XCTAssertGreaterThanOrEqual(sound.count, 30)
        XCTAssertLessThan(sound.count, all.train.count + all.test.count, "some (e.g. network or server examples) must be dropped")
        let humanEval = try QACodePairs.humanEvalEntryPoints()
        for p in sound {
            XCTAssertFalse(humanEval.contains(p.problem.entryPoint))
            XCTAssertTrue(p.problem.prompt.hasSuffix(p.modelPrompt))
            XCTAssertTrue(p.modelPrompt.contains(">>>"))
        }
        let probe = Array(sound.prefix(12))
        var jobs: [(program: String, tests: String)] = []
        for p in probe {
            jobs.append(HumanEval.program(for: p.problem, completion: p.problem.canonicalSolution))
            jobs.append(HumanEval.program(for: p.problem, completion: "    return None\n"))
        }
        let r = sandbox.runAll(jobs)
        for (i, p) in probe.enumerated() {
            XCTAssertTrue(r[2 * i].passed, "\(p.problem.taskID): canonical failed: \(r[2 * i].stderr)")
            // `return None` can only pass a function whose examples all print nothing.
            if r[2 * i + 1].passed { XCTAssertFalse(p.modelPrompt.contains(">>> \(p.problem.entryPoint)(") && p.problem.canonicalSolution.contains("return ")) }
        }
        XCTAssertTrue(r.enumerated().contains { $0.offset % 2 == 1 && !$0.element.passed })
    }
}
