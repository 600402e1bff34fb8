import CMPI
import Foundation

/// The process-wide MPI library state: initialised once (MPI_Init_thread, asking for
/// MPI_THREAD_MULTIPLE so that the stall watchdog's thread can exchange heartbeats while the
/// main thread communicates), finalised at exit or by an explicit `finalize()`. Works without
/// mpirun (an MPI singleton of size 1).
public final class MPIRuntime: @unchecked Sendable {
    public static let shared = MPIRuntime()

    private let lock = NSLock()
    /// The thread support level MPI granted (MPI_THREAD_*).
    public private(set) var threadLevel: Int32 = -1
    /// Run before MPI_Finalize (e.g. to stop a heartbeat channel's use of MPI).
    private var finalizeHooks: [() -> Void] = []

    private init() {}

    /// Whether MPI_Init has run and MPI_Finalize has not.
    public var isActive: Bool {
        var initialized: Int32 = 0, finalized: Int32 = 0
        MPI_Initialized(&initialized)
        MPI_Finalized(&finalized)
        return initialized != 0 && finalized == 0
    }

    /// Open MPI settings ebft-dist adds before `MPI_Init` for a job that spans several hosts
    /// (mpirun's `OMPI_COMM_WORLD_LOCAL_SIZE` below `OMPI_COMM_WORLD_SIZE`, which every rank of
    /// the job sees alike, so all ranks choose the same algorithm): the weight broadcast
    /// (blocking `MPI_Bcast`, `coll tuned`) as a pipeline — a chain in rank order, 4 MiB
    /// segments — so every host's link carries the buffer once. Open MPI's own choice from a
    /// root to two other hosts sends it twice through the root's link (1.12 s against the
    /// pipeline's 0.65 s for 64 MiB at 1 Gbit/s, docs/results/netns.md); within one host its
    /// choice is the faster one, so single-host jobs are left alone. Variables the user set
    /// (`mpirun --mca …` exports them) are kept: only missing names are returned.
    public static func collectiveDefaults(environment env: [String: String]) -> [(String, String)] {
        guard let size = env["OMPI_COMM_WORLD_SIZE"].flatMap({ Int($0) }),
              let local = env["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap({ Int($0) }),
              local < size else { return [] }
        return [("OMPI_MCA_coll_tuned_use_dynamic_rules", "1"),
                ("OMPI_MCA_coll_tuned_bcast_algorithm", "3"),
                ("OMPI_MCA_coll_tuned_bcast_algorithm_segmentsize", "4194304")]
            .filter { env[$0.0] == nil }
    }

    /// Initialises MPI if needed; idempotent. Throws after `finalize()` (MPI cannot restart).
    public func initialize() throws {
        lock.lock(); defer { lock.unlock() }
        var initialized: Int32 = 0, finalized: Int32 = 0
        MPI_Initialized(&initialized)
        MPI_Finalized(&finalized)
        if finalized != 0 { throw CommunicatorError.runtimeUnavailable("MPI was already finalized in this process") }
        if initialized != 0 && atExitRegistered { return }
        if initialized == 0 {
            // Open MPI's non-blocking all-reduce (libnbc), which carries the gradient, picks a
            // binomial tree for in-place buffers: everything goes up to rank 0 and back, 2× the
            // ring's time between 2 hosts and 2.8× between 3 (docs/results/netns.md). The ring
            // moves 2(L − 1)/L of the buffer per rank. A value the user set is kept.
            setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "1", 0)
            for (name, value) in MPIRuntime.collectiveDefaults(environment: ProcessInfo.processInfo.environment) {
                setenv(name, value, 0)
            }
            var provided: Int32 = 0
            let rc = MPI_Init_thread(nil, nil, cmpi_thread_multiple(), &provided)
            if rc != cmpi_success() {
                throw CommunicatorError.mpi(operation: "MPI_Init_thread", code: rc, message: mpiErrorString(rc))
            }
            threadLevel = provided
        } else {
            var provided: Int32 = 0
            MPI_Query_thread(&provided)
            threadLevel = provided
        }
        registerAtExit()
        try mpiCheck(MPI_Comm_set_errhandler(cmpi_comm_world(), cmpi_errors_return()), "MPI_Comm_set_errhandler")
        try mpiCheck(MPI_Comm_set_errhandler(cmpi_comm_self(), cmpi_errors_return()), "MPI_Comm_set_errhandler")
    }

    /// Finalises MPI if it is active; idempotent. Every rank must call it (it is collective).
    public func finalize() throws {
        lock.lock(); defer { lock.unlock() }
        guard isActive else { return }
        runFinalizeHooks()
        try mpiCheck(MPI_Finalize(), "MPI_Finalize")
    }

    /// Registers `hook` to run (once) just before MPI_Finalize, whichever way it is reached.
    func beforeFinalize(_ hook: @escaping () -> Void) {
        lock.lock(); defer { lock.unlock() }
        finalizeHooks.append(hook)
    }

    /// Runs and forgets the hooks (the caller holds `lock`).
    private func runFinalizeHooks() {
        let hooks = finalizeHooks
        finalizeHooks = []
        for h in hooks { h() }
    }

    /// MPI_THREAD_MULTIPLE (any thread may call MPI at any time).
    public static var multipleLevel: Int32 { cmpi_thread_multiple() }

    /// "MPI_THREAD_SERIALIZED" for a granted thread level.
    public static func threadLevelName(_ level: Int32) -> String {
        switch level {
        case cmpi_thread_single(): return "MPI_THREAD_SINGLE"
        case cmpi_thread_funneled(): return "MPI_THREAD_FUNNELED"
        case cmpi_thread_serialized(): return "MPI_THREAD_SERIALIZED"
        case cmpi_thread_multiple(): return "MPI_THREAD_MULTIPLE"
        default: return "thread level \(level)"
        }
    }

    /// MPI_COMM_WORLD, initialising MPI first if needed.
    public func world() throws -> MPICommunicator {
        try initialize()
        return try MPICommunicator(handle: cmpi_comm_world(), owned: false)
    }

    /// This node's name as MPI reports it (MPI_Get_processor_name).
    public var processorName: String {
        var buffer = [CChar](repeating: 0, count: Int(cmpi_max_processor_name()) + 1)
        var length: Int32 = 0
        guard MPI_Get_processor_name(&buffer, &length) == cmpi_success() else { return "?" }
        return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Open MPI's library version line (MPI_Get_library_version).
    public var libraryVersion: String {
        var buffer = [CChar](repeating: 0, count: 8192)
        var length: Int32 = 0
        guard MPI_Get_library_version(&buffer, &length) == cmpi_success() else { return "?" }
        let text = String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.split(separator: ",").first.map(String.init) ?? text
    }

    private var atExitRegistered = false
    private func registerAtExit() {
        if atExitRegistered { return }
        atExitRegistered = true
        atexit { MPIRuntime.finalizeAtExit() }
    }

    private static func finalizeAtExit() {
        var initialized: Int32 = 0, finalized: Int32 = 0
        MPI_Initialized(&initialized)
        MPI_Finalized(&finalized)
        if initialized != 0 && finalized == 0 {
            shared.lock.lock()
            shared.runFinalizeHooks()
            shared.lock.unlock()
            _ = MPI_Finalize()
        }
    }
}

/// MPI's own text for an error code (MPI_Error_string), prefixed by its class name when known.
func mpiErrorString(_ code: Int32) -> String {
    var buffer = [CChar](repeating: 0, count: Int(cmpi_max_error_string()) + 1)
    var length: Int32 = 0
    guard MPI_Error_string(code, &buffer, &length) == cmpi_success() else { return "unknown MPI error \(code)" }
    return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

@inline(__always)
func mpiCheck(_ rc: Int32, _ operation: @autoclosure () -> String) throws {
    if rc != cmpi_success() {
        throw CommunicatorError.mpi(operation: operation(), code: rc, message: mpiErrorString(rc))
    }
}

/// A `Communicator` over an MPI communicator (MPI_COMM_WORLD or one made by `split`).
/// Errors come back as `CommunicatorError.mpi` (MPI_ERRORS_RETURN is set on every communicator).
public final class MPICommunicator: Communicator {
    let handle: MPI_Comm
    private let owned: Bool
    public let rank: Int
    public let size: Int
    public let maxTag: Int

    /// Largest element count passed to one MPI call; larger buffers go in chunks. MPI counts are
    /// Int32, so the default is Int32.max; tests lower it to exercise the chunking.
    public var maxChunkElements: Int = Int(Int32.max) {
        didSet { maxChunkElements = Swift.max(1, Swift.min(maxChunkElements, Int(Int32.max))) }
    }

    /// MPI_COMM_WORLD (initialises MPI if needed).
    public static func world() throws -> MPICommunicator { try MPIRuntime.shared.world() }

    init(handle: MPI_Comm, owned: Bool) throws {
        self.handle = handle
        self.owned = owned
        try mpiCheck(MPI_Comm_set_errhandler(handle, cmpi_errors_return()), "MPI_Comm_set_errhandler")
        var r: Int32 = 0, s: Int32 = 0
        try mpiCheck(MPI_Comm_rank(handle, &r), "MPI_Comm_rank")
        try mpiCheck(MPI_Comm_size(handle, &s), "MPI_Comm_size")
        rank = Int(r); size = Int(s)
        let ub = Int(cmpi_tag_ub(handle))
        maxTag = ub > 0 ? ub : 32767
    }

    /// A distinct, valid send address for ranks that contribute nothing to a gather round.
    private let emptySendBuffer = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)

    deinit {
        emptySendBuffer.deallocate()
        if owned && MPIRuntime.shared.isActive {
            var h: MPI_Comm? = handle
            _ = MPI_Comm_free(&h)
        }
    }

    // MARK: collectives

    public func barrier() throws {
        try mpiCheck(MPI_Barrier(handle), "MPI_Barrier")
    }

    public func allReduce<T: MPIScalar>(_ buffer: UnsafeMutablePointer<T>, count: Int, op: ReduceOp) throws {
        let dtype = T.mpiDatatype, mop = op.mpiOp
        for r in chunkRanges(count: count, limit: maxChunkElements) {
            try mpiCheck(MPI_Allreduce(cmpi_in_place(), buffer + r.lowerBound, Int32(r.count), dtype, mop, handle),
                         "MPI_Allreduce(\(op.rawValue), \(count) × \(T.self))")
        }
        if count == 0 { try barrier() }
    }

    public func startAllReduce<T: MPIScalar>(_ buffer: UnsafeMutablePointer<T>, count: Int, op: ReduceOp) throws
        -> PendingCollective {
        let dtype = T.mpiDatatype, mop = op.mpiOp
        let pending = MPIPendingRequests(operation: "MPI_Iallreduce(\(op.rawValue), \(count) × \(T.self))")
        for r in chunkRanges(count: count, limit: maxChunkElements) {
            var request: MPI_Request? = cmpi_request_null()
            try mpiCheck(MPI_Iallreduce(cmpi_in_place(), buffer + r.lowerBound, Int32(r.count), dtype, mop, handle, &request),
                         pending.operation)
            pending.requests.append(request)
        }
        return pending
    }

    public func reduceScatter<T: MPIScalar>(_ send: UnsafePointer<T>, counts: [Int], into recv: UnsafeMutablePointer<T>,
                                            op: ReduceOp) throws {
        try checkCounts(counts, "MPI_Reduce_scatter")
        let dtype = T.mpiDatatype, mop = op.mpiOp
        let inPlace = UnsafeMutablePointer(mutating: send) + counts[..<rank].reduce(0, +) == recv
        for r in variableCountRounds(counts: counts, limit: maxChunkElements) {
            let c32 = r.counts.map { Int32($0) }
            if inPlace {
                // MPI_IN_PLACE leaves this rank's result at the start of the window: move it home.
                let w = UnsafeMutablePointer(mutating: send) + r.window.lowerBound
                try mpiCheck(MPI_Reduce_scatter(cmpi_in_place(), w, c32, dtype, mop, handle),
                             "MPI_Reduce_scatter(in place, \(op.rawValue), counts \(counts) × \(T.self))")
                Self.moveHome(w, displacement: r.displs[rank], count: r.counts[rank])
            } else {
                try mpiCheck(MPI_Reduce_scatter(send + r.window.lowerBound, recv + r.ownOffsets[rank], c32, dtype, mop, handle),
                             "MPI_Reduce_scatter(\(op.rawValue), counts \(counts) × \(T.self))")
            }
        }
    }

    /// Moves `count` elements from `window` to `window + displacement` (regions may overlap).
    static func moveHome<T>(_ window: UnsafeMutablePointer<T>, displacement: Int, count: Int) {
        if displacement > 0 && count > 0 {
            memmove(UnsafeMutableRawPointer(window + displacement), UnsafeRawPointer(window), count * MemoryLayout<T>.stride)
        }
    }

    public func startReduceScatter<T: MPIScalar>(_ send: UnsafePointer<T>, counts: [Int], into recv: UnsafeMutablePointer<T>,
                                                 op: ReduceOp) throws -> PendingCollective {
        try checkCounts(counts, "MPI_Ireduce_scatter")
        let dtype = T.mpiDatatype, mop = op.mpiOp
        let pending = MPIPendingRequests(operation: "MPI_Ireduce_scatter(\(op.rawValue), counts \(counts) × \(T.self))")
        let inPlace = UnsafeMutablePointer(mutating: send) + counts[..<rank].reduce(0, +) == recv
        for r in variableCountRounds(counts: counts, limit: maxChunkElements) {
            // The counts array must outlive the request (MPI reads it until completion).
            let c32 = pending.retain(r.counts.map { Int32($0) })
            var request: MPI_Request? = cmpi_request_null()
            if inPlace {
                let w = UnsafeMutablePointer(mutating: send) + r.window.lowerBound
                try mpiCheck(MPI_Ireduce_scatter(cmpi_in_place(), w, c32, dtype, mop, handle, &request), pending.operation)
                let d = r.displs[rank], n = r.counts[rank]
                pending.completions.append { Self.moveHome(w, displacement: d, count: n) }
            } else {
                try mpiCheck(MPI_Ireduce_scatter(send + r.window.lowerBound, recv + r.ownOffsets[rank], c32, dtype, mop, handle,
                                                 &request), pending.operation)
            }
            pending.requests.append(request)
        }
        return pending
    }

    public func allGather<T: MPIScalar>(inPlace buffer: UnsafeMutablePointer<T>, counts: [Int]) throws {
        try checkCounts(counts, "MPI_Allgatherv")
        let dtype = T.mpiDatatype
        for r in variableCountRounds(counts: counts, limit: maxChunkElements) {
            let c32 = r.counts.map { Int32($0) }, d32 = r.displs.map { Int32($0) }
            try mpiCheck(MPI_Allgatherv(cmpi_in_place(), 0, dtype, buffer + r.window.lowerBound, c32, d32, dtype, handle),
                         "MPI_Allgatherv(in place, counts \(counts) × \(T.self))")
        }
    }

    private func checkCounts(_ counts: [Int], _ op: String) throws {
        if counts.count != size || counts.contains(where: { $0 < 0 }) {
            throw CommunicatorError.collectiveMismatch(operation: op, detail: "counts \(counts) must have one non-negative entry per rank (\(size))")
        }
    }

    public func broadcast<T: MPIScalar>(_ buffer: UnsafeMutablePointer<T>, count: Int, root: Int) throws {
        try checkRank(root, "MPI_Bcast")
        let dtype = T.mpiDatatype
        for r in chunkRanges(count: count, limit: maxChunkElements) {
            try mpiCheck(MPI_Bcast(buffer + r.lowerBound, Int32(r.count), dtype, Int32(root), handle),
                         "MPI_Bcast(\(count) × \(T.self), root \(root))")
        }
        if count == 0 { try barrier() }
    }

    public func broadcast(bytes: inout [UInt8], root: Int) throws {
        let count = try broadcast(Int64(bytes.count), root: root)
        if rank != root { bytes = [UInt8](repeating: 0, count: Int(count)) }
        if count == 0 { return }
        try bytes.withUnsafeMutableBufferPointer { try broadcast($0.baseAddress!, count: Int(count), root: root) }
    }

    public func allGather<T: MPIScalar>(_ values: UnsafePointer<T>, count: Int, into result: UnsafeMutablePointer<T>) throws {
        let dtype = T.mpiDatatype
        if count <= maxChunkElements {
            try mpiCheck(MPI_Allgather(values, Int32(count), dtype, result, Int32(count), dtype, handle),
                         "MPI_Allgather(\(count) × \(T.self))")
            return
        }
        // Rounds of `chunk` elements per rank through a staging buffer, then into place.
        let chunk = maxChunkElements
        let staging = UnsafeMutablePointer<T>.allocate(capacity: chunk * size)
        defer { staging.deallocate() }
        for r in chunkRanges(count: count, limit: chunk) {
            try mpiCheck(MPI_Allgather(values + r.lowerBound, Int32(r.count), dtype, staging, Int32(r.count), dtype, handle),
                         "MPI_Allgather(\(count) × \(T.self))")
            for i in 0..<size {
                (result + i * count + r.lowerBound).update(from: staging + i * r.count, count: r.count)
            }
        }
    }

    public func gather<T: MPIScalar>(_ values: UnsafePointer<T>, count: Int, into result: UnsafeMutablePointer<T>?, root: Int) throws {
        try checkRank(root, "MPI_Gather")
        precondition(rank != root || result != nil, "gather: the root must pass a result buffer")
        let dtype = T.mpiDatatype
        if count <= maxChunkElements {
            try mpiCheck(MPI_Gather(values, Int32(count), dtype, result, Int32(count), dtype, Int32(root), handle),
                         "MPI_Gather(\(count) × \(T.self), root \(root))")
            return
        }
        let chunk = maxChunkElements
        let staging = UnsafeMutablePointer<T>.allocate(capacity: rank == root ? chunk * size : 1)
        defer { staging.deallocate() }
        for r in chunkRanges(count: count, limit: chunk) {
            try mpiCheck(MPI_Gather(values + r.lowerBound, Int32(r.count), dtype, staging, Int32(r.count), dtype, Int32(root), handle),
                         "MPI_Gather(\(count) × \(T.self), root \(root))")
            if rank == root, let result {
                for i in 0..<size {
                    (result + i * count + r.lowerBound).update(from: staging + i * r.count, count: r.count)
                }
            }
        }
    }

    public func allGather(bytes: [UInt8]) throws -> [[UInt8]] {
        try gatherVariable(bytes, root: nil)!
    }

    public func gather(bytes: [UInt8], root: Int) throws -> [[UInt8]]? {
        try checkRank(root, "MPI_Gatherv")
        return try gatherVariable(bytes, root: root)
    }

    /// Variable-size gather in rounds: in each round every rank contributes its next (at most)
    /// `maxChunkElements / size` bytes, so counts and displacements always fit in Int32.
    private func gatherVariable(_ bytes: [UInt8], root: Int?) throws -> [[UInt8]]? {
        let lengths = try allGather([Int64(bytes.count)]).map { Int($0) }
        let receives = root == nil || root == rank
        var results = [[UInt8]](repeating: [], count: receives ? size : 0)
        if receives { for i in 0..<size { results[i].reserveCapacity(lengths[i]) } }
        let perRank = Swift.max(1, maxChunkElements / size)
        let longest = lengths.max() ?? 0
        let rounds = (longest + perRank - 1) / perRank
        var counts = [Int32](repeating: 0, count: size)
        var displs = [Int32](repeating: 0, count: size)
        // The first round is the largest: every rank's share is min(its length, perRank).
        let stagingSize = lengths.reduce(0) { $0 + Swift.min($1, perRank) }
        var staging = [UInt8](repeating: 0, count: receives ? Swift.max(1, stagingSize) : 1)
        let opName = root == nil ? "MPI_Allgatherv" : "MPI_Gatherv"
        for round in 0..<rounds {
            let start = round * perRank
            var total = 0
            for i in 0..<size {
                counts[i] = Int32(Swift.max(0, Swift.min(perRank, lengths[i] - start)))
                displs[i] = Int32(total)
                total += Int(counts[i])
            }
            let mine = counts[rank]
            let rc: Int32 = bytes.withUnsafeBufferPointer { src in
                staging.withUnsafeMutableBufferPointer { dst in
                    let sendPtr = mine > 0 ? UnsafeRawPointer(src.baseAddress! + start) : UnsafeRawPointer(emptySendBuffer)
                    if let root {
                        return MPI_Gatherv(sendPtr, mine, cmpi_byte(), dst.baseAddress, counts, displs, cmpi_byte(),
                                           Int32(root), handle)
                    }
                    return MPI_Allgatherv(sendPtr, mine, cmpi_byte(), dst.baseAddress, counts, displs, cmpi_byte(), handle)
                }
            }
            try mpiCheck(rc, "\(opName)(\(bytes.count) bytes on rank \(rank))")
            if receives {
                for i in 0..<size where counts[i] > 0 {
                    let d = Int(displs[i])
                    results[i].append(contentsOf: staging[d..<(d + Int(counts[i]))])
                }
            }
        }
        return receives ? results : nil
    }

    // MARK: point to point

    public func send(_ bytes: UnsafeRawBufferPointer, to dest: Int, tag: Int) throws {
        // Negative ranks would alias MPI's special values (MPI_PROC_NULL, MPI_ANY_SOURCE); other
        // bad ranks and tags are left to MPI, whose error (MPI_ERR_RANK, MPI_ERR_TAG) we carry.
        try checkNotNegative(dest, "MPI_Send")
        if bytes.count > maxChunkElements {
            throw CommunicatorError.messageTooLarge(operation: "MPI_Send", bytes: bytes.count, limit: maxChunkElements)
        }
        guard let t = Int32(exactly: tag) else { throw CommunicatorError.invalidTag(operation: "MPI_Send", tag: tag, maxTag: maxTag) }
        try mpiCheck(MPI_Send(bytes.baseAddress, Int32(bytes.count), cmpi_byte(), Int32(dest), t, handle),
                     "MPI_Send(\(bytes.count) bytes to rank \(dest), tag \(tag))")
    }

    public func probe(from source: Int?, tag: Int?) throws -> MessageInfo {
        let (src, tg) = try matchArguments(source, tag, "MPI_Probe")
        var status = MPI_Status()
        try mpiCheck(MPI_Probe(src, tg, handle, &status), "MPI_Probe")
        return try info(status, "MPI_Probe")
    }

    public func tryProbe(from source: Int?, tag: Int?) throws -> MessageInfo? {
        let (src, tg) = try matchArguments(source, tag, "MPI_Iprobe")
        var status = MPI_Status()
        var flag: Int32 = 0
        try mpiCheck(MPI_Iprobe(src, tg, handle, &flag, &status), "MPI_Iprobe")
        return flag != 0 ? try info(status, "MPI_Iprobe") : nil
    }

    public func receive(from source: Int?, tag: Int?, expectedSize: Int?) throws -> Message {
        let (src, tg) = try matchArguments(source, tag, "MPI_Mprobe")
        // Matched probe + receive: the message sized by the probe is the one received.
        var status = MPI_Status()
        var message: MPI_Message? = cmpi_message_null()
        try mpiCheck(MPI_Mprobe(src, tg, handle, &message, &status), "MPI_Mprobe")
        let env = try info(status, "MPI_Mprobe")
        var bytes = [UInt8](repeating: 0, count: env.count)
        let rc = bytes.withUnsafeMutableBytes { MPI_Mrecv($0.baseAddress, Int32(env.count), cmpi_byte(), &message, &status) }
        try mpiCheck(rc, "MPI_Mrecv(\(env.count) bytes from rank \(env.source), tag \(env.tag))")
        if let expectedSize, expectedSize != env.count {
            throw CommunicatorError.messageSizeMismatch(operation: "receive", source: env.source, tag: env.tag,
                                                        expected: expectedSize, actual: env.count)
        }
        return Message(source: env.source, tag: env.tag, bytes: bytes)
    }

    // MARK: split / abort

    public func split(color: Int?, key: Int) throws -> Communicator? {
        let member = (color ?? -1) >= 0
        guard let c = Int32(exactly: member ? color! : 0), let k = Int32(exactly: key) else {
            throw CommunicatorError.invalidSplit(color: color ?? -1, key: key)
        }
        var newHandle: MPI_Comm? = cmpi_comm_null()
        try mpiCheck(MPI_Comm_split(handle, member ? c : cmpi_undefined(), k, &newHandle),
                     "MPI_Comm_split(color \(color.map(String.init) ?? "nil"), key \(key))")
        guard member, let h = newHandle, h != cmpi_comm_null() else { return nil }
        return try MPICommunicator(handle: h, owned: true)
    }

    public func abort(code: Int32) -> Never {
        fflush(nil)
        _ = MPI_Abort(handle, code)
        exit(code)
    }

    // MARK: helpers

    private func checkRank(_ r: Int, _ op: String) throws {
        // MPI checks roots too, but its message names no values; ours does.
        if r < 0 || r >= size { throw CommunicatorError.invalidRank(operation: op, rank: r, size: size) }
    }

    private func checkNotNegative(_ r: Int, _ op: String) throws {
        if r < 0 || r > Int(Int32.max) { throw CommunicatorError.invalidRank(operation: op, rank: r, size: size) }
    }

    private func checkTag(_ t: Int, _ op: String) throws {
        if t < 0 || t > maxTag { throw CommunicatorError.invalidTag(operation: op, tag: t, maxTag: maxTag) }
    }

    private func matchArguments(_ source: Int?, _ tag: Int?, _ op: String) throws -> (Int32, Int32) {
        // nil means "any"; explicit negative values would alias MPI_ANY_SOURCE / MPI_ANY_TAG.
        if let source { try checkRank(source, op) }
        if let tag { try checkTag(tag, op) }
        return (source.map { Int32($0) } ?? cmpi_any_source(), tag.map { Int32($0) } ?? cmpi_any_tag())
    }

    private func info(_ status: MPI_Status, _ op: String) throws -> MessageInfo {
        var s = status
        var count: Int32 = 0
        try mpiCheck(MPI_Get_count(&s, cmpi_byte(), &count), "MPI_Get_count after \(op)")
        return MessageInfo(source: Int(cmpi_status_source(&s)), tag: Int(cmpi_status_tag(&s)), count: Int(count))
    }
}

extension MPIScalar {
    static var mpiDatatype: MPI_Datatype {
        switch scalarKind {
        case .uint8: return cmpi_uint8()
        case .int32: return cmpi_int32()
        case .int64: return cmpi_int64()
        case .float32: return cmpi_float()
        case .float64: return cmpi_double()
        }
    }
}

extension ReduceOp {
    var mpiOp: MPI_Op {
        switch self {
        case .sum: return cmpi_op_sum()
        case .max: return cmpi_op_max()
        case .min: return cmpi_op_min()
        }
    }
}

/// Outstanding MPI requests of one started collective.
final class MPIPendingRequests: PendingCollective {
    let operation: String
    var requests: [MPI_Request?] = []

    init(operation: String) { self.operation = operation }

    /// Arrays MPI reads until the requests complete (counts of variable-count collectives).
    private var retained: [UnsafeMutableBufferPointer<Int32>] = []
    /// Run once when the requests have completed (e.g. moving an in-place result home).
    var completions: [() -> Void] = []

    private func completed() {
        let c = completions
        completions = []
        for f in c { f() }
    }

    /// A copy of `values` that lives until the requests have completed.
    func retain(_ values: [Int32]) -> UnsafeMutablePointer<Int32> {
        let b = UnsafeMutableBufferPointer<Int32>.allocate(capacity: Swift.max(1, values.count))
        _ = b.initialize(from: values)
        retained.append(b)
        return b.baseAddress!
    }

    deinit {
        // Still in use by MPI when the requests never completed: leak them rather than free.
        if requests.isEmpty { for b in retained { b.deallocate() } }
    }

    func test() throws -> Bool {
        if requests.isEmpty { return true }
        var flag: Int32 = 0
        let n = Int32(requests.count)
        try requests.withUnsafeMutableBufferPointer { b in
            try mpiCheck(MPI_Testall(n, b.baseAddress!, &flag, nil), operation)
        }
        if flag != 0 { requests = []; completed() }
        return flag != 0
    }

    func wait() throws {
        if requests.isEmpty { return }
        let n = Int32(requests.count)
        try requests.withUnsafeMutableBufferPointer { b in
            try mpiCheck(MPI_Waitall(n, b.baseAddress!, nil), operation)
        }
        requests = []
        completed()
    }
}
