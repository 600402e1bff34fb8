import Foundation
import XCTest
@testable import Trainer

final class PeakMemoryTests: XCTestCase {
    /// A /proc/self/status field in bytes, parsed here independently of PeakMemory.
    func status(_ field: String) throws -> Int {
        let text = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = try XCTUnwrap(text.split(separator: "\n").first { $0.hasPrefix(field + ":") })
        let kb = try XCTUnwrap(Int(line.split(whereSeparator: { $0 == " " || $0 == "\t" })[1]))
        return kb * 1024
    }

    /// A 256 MiB buffer, every page touched: the peak is at least the resident set before it
    /// plus the buffer (less a little that the kernel may have reclaimed meanwhile), and no more
    /// than the machine's memory.
    func testPeakCoversATouchedBuffer() throws {
        let before = try status("VmRSS")
        let bytes = 256 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 4096)
        defer { buffer.deallocate() }
        for page in stride(from: 0, to: bytes, by: 4096) {
            buffer.storeBytes(of: UInt8(page >> 12 & 0xFF), toByteOffset: page, as: UInt8.self)
        }
        let peak = try XCTUnwrap(PeakMemory.residentBytes())
        XCTAssertGreaterThanOrEqual(peak, before + bytes - (16 << 20), "VmRSS before \(before), buffer \(bytes)")
        XCTAssertLessThanOrEqual(peak, Int(ProcessInfo.processInfo.physicalMemory))
        XCTAssertEqual(PeakMemory.residentMiB(), Double(try XCTUnwrap(PeakMemory.residentBytes())) / 1_048_576, accuracy: 64)
        XCTAssertEqual(peak, try status("VmHWM"), accuracy: 64 << 20)
    }
}
