import ArgumentParser
import Distributed
import Foundation
import Model

/// `ebft-dist info`: where every rank runs and what it will do.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print each rank's rank, role, host, BLAS threads and OpenBLAS build, in rank order.")

    @Option(help: "Number of learner ranks (default: 1 with two or more ranks).")
    var learners: Int?

    @Flag(help: "Colocate: every rank is both learner and rollout worker.")
    var colocate = false

    func run() throws {
        try runOnWorld { comm in
            let roles: RoleAssignment
            do {
                roles = try RoleAssignment(worldSize: comm.size, learners: learners, colocate: colocate)
            } catch let e as RoleError {
                throw AllRanksError(message: e.description, code: 2)
            }
            let role = roles.role(of: comm.rank)
            var line = "\(rankTag(comm)) role \(padRight(role.rawValue, 14)) host \(ProcessInfo.processInfo.hostName)"
                + "  pid \(getpid())  blas-threads \(BLAS.threads)  openblas \(BLAS.configuration)"
            if role == .rolloutWorker, let l = roles.learner(forWorker: comm.rank) { line += "  sends-to \(l)" }
            guard let lines = try comm.gather(bytes: Array(line.utf8), root: 0) else { return }
            emit("ebft-dist info: \(comm.size) rank(s), \(MPIRuntime.shared.libraryVersion), "
                 + (roles.isColocated ? "colocated (every rank both roles)"
                    : "learners \(roles.learnerRanks), rollout workers \(roles.workerRanks)"))
            for l in lines { emit(String(decoding: l, as: UTF8.self)) }
        }
    }
}
