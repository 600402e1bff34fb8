import Foundation
import XCTest

/// Runs a Python snippet (the PATH's python3, where scripts/install-deps.sh puts the test
/// oracles) with JSON on stdin and returns its stdout.
enum PythonOracle {
    static func run(_ script: String, input: Data = Data(), file: StaticString = #filePath, line: UInt = #line) throws -> Data {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script]
        let inPipe = Pipe(), outPipe = Pipe(), errPipe = Pipe()
        p.standardInput = inPipe
        p.standardOutput = outPipe
        p.standardError = errPipe
        try p.run()
        // Write stdin and drain both outputs concurrently (no pipe deadlock).
        let group = DispatchGroup()
        let outBox = DataBox(), errBox = DataBox()
        DispatchQueue.global().async(group: group) { outBox.data = outPipe.fileHandleForReading.readDataToEndOfFile() }
        DispatchQueue.global().async(group: group) { errBox.data = errPipe.fileHandleForReading.readDataToEndOfFile() }
        inPipe.fileHandleForWriting.write(input)
        try inPipe.fileHandleForWriting.close()
        group.wait()
        p.waitUntilExit()
        let out = outBox.data, err = errBox.data
        guard p.terminationStatus == 0 else {
            let msg = String(decoding: err, as: UTF8.self)
            XCTFail("python3 oracle failed (run scripts/install-deps.sh?): \(msg)", file: file, line: line)
            throw NSError(domain: "PythonOracle", code: Int(p.terminationStatus))
        }
        return out
    }
}

/// Written by one reader thread, read after DispatchGroup.wait (which orders the accesses).
private final class DataBox: @unchecked Sendable {
    var data = Data()
}
