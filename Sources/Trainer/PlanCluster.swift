import Foundation

/// The machines a run is planned for: N ranks over H hosts, cores, and the network.
///
/// Placement follows mpirun: `block` is Open MPI's default for a hostfile with S slots per host
/// (`--map-by slot`: ranks 0…S−1 on the first host, S…2S−1 on the second, …), with
/// S = ⌈N/H⌉ (what `scripts/netns-hosts.sh up H S` writes); `round-robin` is `--map-by node`
/// (rank r on host r mod H). `scripts/launch.sh` runs on one host.
///
/// Cores: a rank runs `threads` BLAS threads (default `scripts/launch.sh`'s rule,
/// max(1, ⌊cores per host / ranks on the host⌋)). While a phase runs, the ranks *active in it*
/// (workers while sampling, learners in the backward and the optimizer; the others sleep in a
/// polling wait) share their host's cores: an active rank computes on
/// min(threads, cores per host / active ranks on the host) cores, fractional allowed.
/// `sharedCores`: all hosts draw on one pool of `coresPerHost` cores (network namespaces on
/// one machine).
public struct PlanCluster: Equatable, Sendable {
    public enum Placement: String, Sendable, CaseIterable {
        case block
        case roundRobin = "round-robin"
    }

    public var ranks: Int
    public var hosts: Int
    public var coresPerHost: Double
    /// BLAS threads per rank (nil: launch.sh's rule).
    public var coresPerRank: Double?
    public var placement: Placement
    /// Each rank's host, as observed (overrides `placement`; `train --learners auto`).
    public var hostMap: [Int]?
    public var sharedCores: Bool
    /// Between hosts: bytes/s through each host's link, each direction, and seconds per message.
    public var bandwidth: Double
    public var latency: Double
    /// Within a host (shared memory): bytes/s of one transfer between two ranks, seconds per message.
    public var intraBandwidth: Double
    public var intraLatency: Double

    public init(ranks: Int, hosts: Int = 1, coresPerHost: Double, coresPerRank: Double? = nil,
                placement: Placement = .block, sharedCores: Bool = false,
                bandwidth: Double, latency: Double, intraBandwidth: Double, intraLatency: Double) {
        self.ranks = ranks
        self.hosts = hosts
        self.coresPerHost = coresPerHost
        self.coresPerRank = coresPerRank
        self.placement = placement
        self.hostMap = nil
        self.sharedCores = sharedCores
        self.bandwidth = bandwidth
        self.latency = latency
        self.intraBandwidth = intraBandwidth
        self.intraLatency = intraLatency
    }

    public func validate() throws {
        func need(_ ok: Bool, _ what: String) throws { if !ok { throw PlanError.input(what) } }
        try need(ranks >= 1, "--ranks must be at least 1, got \(ranks)")
        try need(hosts >= 1, "--hosts must be at least 1, got \(hosts)")
        try need(hosts <= ranks, "--hosts \(hosts) is more than --ranks \(ranks): a host without a rank")
        if hostMap == nil && placement == .block {
            try need((ranks + slots - 1) / slots == hosts,
                     "block placement of \(ranks) ranks with \(slots) slots per host leaves a host empty: use round-robin placement or fewer hosts")
        }
        if let m = hostMap {
            try need(m.count == ranks && m.allSatisfy({ $0 >= 0 && $0 < hosts }) && Set(m).count == hosts,
                     "the host map must name a host 0..<\(hosts) for each of \(ranks) ranks, every host used")
        }
        try need(coresPerHost > 0 && coresPerHost.isFinite, "cores per host must be positive, got \(coresPerHost)")
        if let c = coresPerRank { try need(c > 0 && c.isFinite, "--cores-per-rank must be positive, got \(c)") }
        try need(bandwidth > 0 && bandwidth.isFinite, "--bandwidth must be positive, got \(bandwidth / 1e9) GB/s")
        try need(intraBandwidth > 0 && intraBandwidth.isFinite, "--intra-bandwidth must be positive, got \(intraBandwidth / 1e9) GB/s")
        try need(latency >= 0 && latency.isFinite, "--latency must be ≥ 0, got \(latency * 1e6) µs")
        try need(intraLatency >= 0 && intraLatency.isFinite, "--intra-latency must be ≥ 0, got \(intraLatency * 1e6) µs")
    }

    /// Slots per host under block placement.
    public var slots: Int { (ranks + hosts - 1) / hosts }

    public func host(of rank: Int) -> Int {
        if let m = hostMap { return m[rank] }
        switch placement {
        case .block: return rank / slots
        case .roundRobin: return rank % hosts
        }
    }

    public func ranks(onHost h: Int) -> [Int] { (0..<ranks).filter { host(of: $0) == h } }

    /// The CPU pool a rank computes from (its host, or the one shared pool).
    func pool(of rank: Int) -> Int { sharedCores ? 0 : host(of: rank) }

    /// BLAS threads of `rank`.
    public func threads(of rank: Int) -> Double {
        if let c = coresPerRank { return c }
        let onPool = Double((0..<ranks).filter { pool(of: $0) == pool(of: rank) }.count)
        return max(1, (coresPerHost / onPool).rounded(.down))
    }

    /// Cores `rank` computes on while the ranks `active` (which include it) compute.
    public func cores(of rank: Int, active: [Int]) -> Double {
        let sharing = Double(active.filter { pool(of: $0) == pool(of: rank) }.count)
        return min(threads(of: rank), coresPerHost / max(sharing, 1))
    }

    public func sameHost(_ a: Int, _ b: Int) -> Bool { host(of: a) == host(of: b) }
    func linkLatency(_ a: Int, _ b: Int) -> Double { sameHost(a, b) ? intraLatency : latency }

    // MARK: communication

    /// One message between two ranks.
    public struct Message: Equatable, Sendable {
        public var from: Int
        public var to: Int
        public var bytes: Double
    }

    /// Messages that run at the same time: each rank sends its messages one after another and
    /// receives one after another (per message latency + bytes / bandwidth); a host's link
    /// carries all its ranks' inter-host bytes in each direction. The time is the slowest of
    /// these.
    public func concurrentTime(_ messages: [Message]) -> Double {
        var send = [Double](repeating: 0, count: ranks), receive = send
        var egress = [Double](repeating: 0, count: hosts), ingress = egress
        for m in messages where m.from != m.to {
            let intra = sameHost(m.from, m.to)
            let t = (intra ? intraLatency : latency) + m.bytes / (intra ? intraBandwidth : bandwidth)
            send[m.from] += t
            receive[m.to] += t
            if !intra {
                egress[host(of: m.from)] += m.bytes
                ingress[host(of: m.to)] += m.bytes
            }
        }
        let nic = (egress + ingress).map { $0 / bandwidth }.max() ?? 0
        return max(send.max() ?? 0, receive.max() ?? 0, nic)
    }

    /// One round of a ring over `group` (in order): member i sends `bytes` to member i+1.
    /// Each link's latency + bytes / its bandwidth, where a host's link is shared by the ring
    /// links that leave (or enter) it.
    public func ringRound(_ group: [Int], bytes: Double) -> Double {
        guard group.count > 1 else { return 0 }
        let links = group.indices.map { (group[$0], group[($0 + 1) % group.count]) }
        var leaving = [Int](repeating: 0, count: hosts), entering = leaving
        for (a, b) in links where !sameHost(a, b) {
            leaving[host(of: a)] += 1
            entering[host(of: b)] += 1
        }
        return links.map { a, b -> Double in
            if sameHost(a, b) { return intraLatency + bytes / intraBandwidth }
            let share = Double(max(leaving[host(of: a)], entering[host(of: b)]))
            return latency + bytes * share / bandwidth
        }.max() ?? 0
    }

    /// Ring all-reduce of `bytes` over `group`: 2(n−1) rounds of bytes/n (reduce-scatter, then
    /// all-gather), so each member sends and receives 2(n−1)/n · bytes.
    public func allReduceTime(_ group: [Int], bytes: Double) -> Double {
        let n = Double(group.count)
        return n > 1 ? 2 * (n - 1) * ringRound(group, bytes: bytes / n) : 0
    }

    /// Ring reduce-scatter or all-gather: n−1 rounds of bytes/n.
    public func halfRingTime(_ group: [Int], bytes: Double) -> Double {
        let n = Double(group.count)
        return n > 1 ? (n - 1) * ringRound(group, bytes: bytes / n) : 0
    }

    /// A pipelined chain broadcast of `bytes` from group[0] along the group's order (Open MPI's
    /// segmented pipeline for large messages): every receiver gets the bytes once, the chain
    /// runs at its slowest link (a host's link shared by the chain links through it), plus one
    /// latency per hop.
    public func broadcastTime(_ group: [Int], bytes: Double) -> Double {
        guard group.count > 1 else { return 0 }
        let links = (1..<group.count).map { (group[$0 - 1], group[$0]) }
        var leaving = [Int](repeating: 0, count: hosts), entering = leaving
        for (a, b) in links where !sameHost(a, b) {
            leaving[host(of: a)] += 1
            entering[host(of: b)] += 1
        }
        let slowest = links.map { a, b -> Double in
            if sameHost(a, b) { return intraBandwidth }
            return bandwidth / Double(max(leaving[host(of: a)], entering[host(of: b)]))
        }.min()!
        return links.map { linkLatency($0.0, $0.1) }.reduce(0, +) + bytes / slowest
    }
}
