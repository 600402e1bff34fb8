import XCTest
@testable import Distributed

/// The Open MPI settings `MPIRuntime.initialize` adds before `MPI_Init`: the pipelined weight
/// broadcast only for jobs spanning several hosts, never over a value the user set.
final class CollectiveDefaultsTests: XCTestCase {
    private let pinned = ["OMPI_MCA_coll_tuned_use_dynamic_rules=1", "OMPI_MCA_coll_tuned_bcast_algorithm=3",
                          "OMPI_MCA_coll_tuned_bcast_algorithm_segmentsize=4194304"]

    private func defaults(_ env: [String: String]) -> [String] {
        MPIRuntime.collectiveDefaults(environment: env).map { "\($0.0)=\($0.1)" }
    }

    func testSeveralHostsGetThePipelinedBroadcast() {
        // 3 ranks over 2 hosts: the host with one rank and the one with two both see local < size.
        XCTAssertEqual(defaults(["OMPI_COMM_WORLD_SIZE": "3", "OMPI_COMM_WORLD_LOCAL_SIZE": "1"]), pinned)
        XCTAssertEqual(defaults(["OMPI_COMM_WORLD_SIZE": "3", "OMPI_COMM_WORLD_LOCAL_SIZE": "2"]), pinned)
    }

    func testOneHostOrNoMPIRunKeepsOpenMPIsChoice() {
        XCTAssertEqual(defaults(["OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_SIZE": "4"]), [])
        XCTAssertEqual(defaults([:]), [], "a singleton (no mpirun) is one host")
        XCTAssertEqual(defaults(["OMPI_COMM_WORLD_SIZE": "4"]), [], "without the local size the hosts are unknown")
        XCTAssertEqual(defaults(["OMPI_COMM_WORLD_SIZE": "x", "OMPI_COMM_WORLD_LOCAL_SIZE": "1"]), [])
    }

    func testUserSettingsWin() {
        let env = ["OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_LOCAL_SIZE": "1",
                   "OMPI_MCA_coll_tuned_bcast_algorithm": "9"]
        XCTAssertEqual(defaults(env), [pinned[0], pinned[2]])
    }
}
