import Foundation
import XCTest

/// Runs one of the repository's scripts (`scripts/…`) from the repository's root.
enum ScriptRunner {
    static let repository = URL(fileURLWithPath: "\(#filePath)").deletingLastPathComponent()
        .appendingPathComponent("../..").standardized

    /// The script's standard output; fails the calling test when it exits with a non-zero status.
    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                    file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let r = try outcome(executable, arguments, environment: environment)
        XCTAssertEqual(r.status, 0, r.stderr, file: file, line: line)
        return r.stdout
    }

    /// The exit status, standard output and standard error, whatever the status.
    static func outcome(_ executable: String, _ arguments: [String], environment: [String: String] = [:])
        throws -> (status: Int32, stdout: String, stderr: String) {
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
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }
}
