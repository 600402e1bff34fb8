import Foundation
import XCTest

/// Runs one of the repository's scripts (`scripts/…`) from the repository's root and returns its
/// standard output, failing the calling test when it exits with a non-zero status.
enum ScriptRunner {
    static let repository = URL(fileURLWithPath: "\(#filePath)").deletingLastPathComponent()
        .appendingPathComponent("../..").standardized

    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                    file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        p.currentDirectoryURL = repository
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, String(decoding: e, as: UTF8.self), file: file, line: line)
        return String(decoding: o, as: UTF8.self)
    }
}
