/// Who does what: learners (gradients, optimizer), rollout workers (sampling, rewards), or both.
public enum Role: String, Sendable, CaseIterable, CustomStringConvertible {
    case learner
    case rolloutWorker = "rollout-worker"
    case both

    public var isLearner: Bool { self != .rolloutWorker }
    public var isWorker: Bool { self != .learner }
    public var description: String { rawValue }
}

/// An impossible role request, with what to change.
public enum RoleError: Error, Equatable, CustomStringConvertible {
    case invalidWorldSize(Int)
    case tooFewLearners(Int)
    case tooManyLearners(learners: Int, worldSize: Int)
    case colocatedLearnerCount(learners: Int, worldSize: Int)

    public var description: String {
        switch self {
        case let .invalidWorldSize(n):
            return "world size must be at least 1, got \(n)"
        case let .tooFewLearners(l):
            return "--learners must be at least 1, got \(l)"
        case let .tooManyLearners(l, n):
            return "--learners \(l) leaves no rollout worker among \(n) ranks: use at most \(n - 1) learners, or --colocate to make every rank both"
        case let .colocatedLearnerCount(l, n):
            return "colocated mode makes all \(n) ranks learners, but --learners \(l) was requested: omit --learners or pass \(n)"
        }
    }
}

/// The role of every rank: ranks `0..<learners` learn, the rest are rollout workers, each
/// worker sending its experience to one learner (round-robin, so shares differ by at most one).
/// With one rank, or `colocate`, every rank is both (messages short-circuit to itself).
public struct RoleAssignment: Sendable, Equatable {
    public let worldSize: Int
    public let roles: [Role]
    public let learnerRanks: [Int]
    public let workerRanks: [Int]

    /// - Parameters:
    ///   - learners: number of learner ranks; default 1 when `worldSize` ≥ 2.
    ///   - colocate: every rank both learns and samples (forced when `worldSize` is 1).
    public init(worldSize: Int, learners: Int? = nil, colocate: Bool = false) throws {
        guard worldSize >= 1 else { throw RoleError.invalidWorldSize(worldSize) }
        if let learners, learners < 1 { throw RoleError.tooFewLearners(learners) }
        self.worldSize = worldSize
        if colocate || worldSize == 1 {
            if let learners, learners != worldSize {
                throw RoleError.colocatedLearnerCount(learners: learners, worldSize: worldSize)
            }
            roles = Array(repeating: .both, count: worldSize)
            learnerRanks = Array(0..<worldSize)
            workerRanks = Array(0..<worldSize)
        } else {
            let l = learners ?? 1
            guard l < worldSize else { throw RoleError.tooManyLearners(learners: l, worldSize: worldSize) }
            roles = (0..<worldSize).map { $0 < l ? .learner : .rolloutWorker }
            learnerRanks = Array(0..<l)
            workerRanks = Array(l..<worldSize)
        }
    }

    public var isColocated: Bool { roles.allSatisfy { $0 == .both } }

    public func role(of rank: Int) -> Role {
        precondition(rank >= 0 && rank < worldSize, "rank \(rank) outside 0..<\(worldSize)")
        return roles[rank]
    }

    /// The learner rank that worker `rank` sends its experience to (itself when colocated),
    /// or nil when `rank` is not a worker.
    public func learner(forWorker rank: Int) -> Int? {
        guard let i = workerRanks.firstIndex(of: rank) else { return nil }
        if isColocated { return rank }
        return learnerRanks[i % learnerRanks.count]
    }

    /// The workers that send to learner `rank`, ascending (empty when `rank` is not a learner).
    public func workers(ofLearner rank: Int) -> [Int] {
        workerRanks.filter { learner(forWorker: $0) == rank }
    }

    /// Splits `comm` (whose size must be `worldSize`) into the learners' and the workers'
    /// sub-communicators; a rank gets nil for a group it is not in. Collective over `comm`.
    public func split(_ comm: Communicator) throws -> RoleCommunicators {
        precondition(comm.size == worldSize, "RoleAssignment for \(worldSize) ranks used on a communicator of \(comm.size)")
        let role = roles[comm.rank]
        let learners = try comm.split(color: role.isLearner ? 0 : nil, key: comm.rank)
        let workers = try comm.split(color: role.isWorker ? 0 : nil, key: comm.rank)
        return RoleCommunicators(world: comm, role: role, learners: learners, workers: workers)
    }
}

/// A rank's view of the role split: the world plus the groups it belongs to.
public struct RoleCommunicators {
    public let world: Communicator
    public let role: Role
    /// All learners (ranks in learner order), or nil on a pure rollout worker.
    public let learners: Communicator?
    /// All rollout workers, or nil on a pure learner.
    public let workers: Communicator?
}
