import Foundation

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord files checksum their
/// records, and TFRecord's "masked" form of it.
public enum CRC32C {
    static let table: [UInt32] = (0 ..< 256).map { n in
        var c = UInt32(n)
        for _ in 0 ..< 8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    /// The CRC-32C of `bytes`.
    public static func checksum<S: Sequence>(_ bytes: S) -> UInt32 where S.Element == UInt8 {
        var crc: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { t in
            for b in bytes { crc = t[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
        }
        return crc ^ 0xFFFF_FFFF
    }

    /// TFRecord's masked CRC: rotated right by 15 bits plus a constant, so that a CRC stored
    /// inside checksummed data does not checksum to a fixed value.
    public static func masked(_ crc: UInt32) -> UInt32 {
        ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }
}

/// The few protobuf wire-format pieces a TensorBoard `Event` needs (proto3, fields in number
/// order as protobuf's own serialiser writes them).
enum ProtoWire {
    static func varint(_ value: UInt64, into out: inout [UInt8]) {
        var v = value
        while v >= 0x80 { out.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        out.append(UInt8(v))
    }

    /// Field key: number << 3 | wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).
    static func key(_ field: UInt64, _ wireType: UInt64, into out: inout [UInt8]) {
        varint(field << 3 | wireType, into: &out)
    }

    static func bytes(_ field: UInt64, _ payload: [UInt8], into out: inout [UInt8]) {
        key(field, 2, into: &out)
        varint(UInt64(payload.count), into: &out)
        out += payload
    }

    static func double(_ field: UInt64, _ value: Double, into out: inout [UInt8]) {
        key(field, 1, into: &out)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { out += $0 }
    }

    static func float(_ field: UInt64, _ value: Float, into out: inout [UInt8]) {
        key(field, 5, into: &out)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { out += $0 }
    }
}

/// A TensorBoard event file (`events.out.tfevents.<time>.<host>`) of scalar summaries: TFRecord
/// framing (little-endian uint64 length, masked CRC-32C of the length, the serialised `Event`,
/// masked CRC-32C of it), the first event carrying `file_version: "brain.Event:2"`, then one
/// event per metrics record with `Summary { value { tag, simple_value } }` for each number.
/// Every record is written with one write and synchronised, so a killed run loses nothing.
public final class TensorBoardWriter {
    public let path: String
    private let handle: FileHandle

    /// The file name TensorBoard's own writers use: seconds since the epoch and the host name.
    public static func fileName(time: Date = Date(), host: String = ProcessInfo.processInfo.hostName) -> String {
        "events.out.tfevents.\(Int(time.timeIntervalSince1970)).\(host)"
    }

    /// Whether `name` is an event file that TensorBoard would read from a run directory.
    public static func isEventFile(_ name: String) -> Bool { name.hasPrefix("events.out.tfevents.") }

    /// Creates (truncating) `directory/fileName()` and writes the file-version event.
    public init(directory: String, time: Date = Date()) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = (directory as NSString).appendingPathComponent(Self.fileName(time: time))
        guard fm.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path) else {
            throw TrainerError.io("cannot create the TensorBoard event file \(path)")
        }
        handle = h
        var event: [UInt8] = []
        ProtoWire.double(1, time.timeIntervalSince1970, into: &event)
        ProtoWire.bytes(3, Array("brain.Event:2".utf8), into: &event)
        append(event)
    }

    deinit { try? handle.close() }

    /// One event at `step` holding `scalars` (tag, value) as simple values.
    public func write(step: Int64, scalars: [(tag: String, value: Float)], wallTime: Date = Date()) {
        var summary: [UInt8] = []
        for (tag, value) in scalars {
            var v: [UInt8] = []
            ProtoWire.bytes(1, Array(tag.utf8), into: &v)
            ProtoWire.float(2, value, into: &v)
            ProtoWire.bytes(1, v, into: &summary)
        }
        var event: [UInt8] = []
        ProtoWire.double(1, wallTime.timeIntervalSince1970, into: &event)
        if step != 0 {
            ProtoWire.key(2, 0, into: &event)
            ProtoWire.varint(UInt64(bitPattern: step), into: &event)
        }
        ProtoWire.bytes(5, summary, into: &event)
        append(event)
    }

    /// A metrics record's numbers (all but `step`), tagged `kind/key`; non-finite numbers (null
    /// in the JSON line) are written as they are.
    public func write(_ record: MetricsRecord, wallTime: Date = Date()) {
        let kind = record.strings["kind"] ?? "metrics"
        let scalars = record.keys.compactMap { k -> (tag: String, value: Float)? in
            guard k != "step", let v = record.numbers[k] else { return nil }
            return (tag: "\(kind)/\(k)", value: Float(v))
        }
        write(step: Int64(record["step"] ?? 0), scalars: scalars, wallTime: wallTime)
    }

    /// The TFRecord framing of `data`.
    static func frame(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + 16)
        withUnsafeBytes(of: UInt64(data.count).littleEndian) { out += $0 }
        let lengthCRC = CRC32C.masked(CRC32C.checksum(out))
        withUnsafeBytes(of: lengthCRC.littleEndian) { out += $0 }
        out += data
        withUnsafeBytes(of: CRC32C.masked(CRC32C.checksum(data)).littleEndian) { out += $0 }
        return out
    }

    private func append(_ event: [UInt8]) {
        handle.write(Data(Self.frame(event)))
        try? handle.synchronize()
    }
}

extension TensorBoardWriter {
    /// Starts the run directory's event file afresh: removes the event files already there and
    /// writes every record of `metricsFile` (a resumed run's carried-over records) into a new
    /// one, so the event file always holds exactly the scalars of metrics.jsonl.
    public static func mirroring(metricsFile: String, directory: String) throws -> TensorBoardWriter {
        let fm = FileManager.default
        for name in (try? fm.contentsOfDirectory(atPath: directory)) ?? [] where isEventFile(name) {
            try fm.removeItem(atPath: (directory as NSString).appendingPathComponent(name))
        }
        let writer = try TensorBoardWriter(directory: directory)
        let text = (try? String(contentsOfFile: metricsFile, encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
            var r = MetricsRecord()
            r["step"] = (obj["step"] as? NSNumber)?.doubleValue ?? 0
            if let kind = obj["kind"] as? String { r.set("kind", kind) }
            for (k, v) in obj.sorted(by: { $0.key < $1.key }) where k != "step" {
                if v is NSNull { r[k] = .nan } else if let n = v as? NSNumber, !(v is String) { r[k] = n.doubleValue }
            }
            writer.write(r)
        }
        return writer
    }
}
