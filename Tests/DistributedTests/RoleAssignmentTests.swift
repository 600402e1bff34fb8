import XCTest
@testable import Distributed

final class RoleAssignmentTests: XCTestCase {
    func testOneRankIsColocated() throws {
        let a = try RoleAssignment(worldSize: 1)
        XCTAssertEqual(a.roles, [.both])
        XCTAssertTrue(a.isColocated)
        XCTAssertEqual(a.learner(forWorker: 0), 0)
        XCTAssertEqual(try RoleAssignment(worldSize: 1, learners: 1).roles, [.both])
    }

    func testDefaultIsOneLearnerAndTheRestWorkers() throws {
        let a = try RoleAssignment(worldSize: 4)
        XCTAssertEqual(a.roles, [.learner, .rolloutWorker, .rolloutWorker, .rolloutWorker])
        XCTAssertEqual(a.learnerRanks, [0])
        XCTAssertEqual(a.workerRanks, [1, 2, 3])
        XCTAssertFalse(a.isColocated)
        XCTAssertEqual([1, 2, 3].map { a.learner(forWorker: $0) }, [0, 0, 0])
        XCTAssertNil(a.learner(forWorker: 0))
        XCTAssertEqual(a.workers(ofLearner: 0), [1, 2, 3])
    }

    func testWorkersAreSpreadRoundRobinOverLearners() throws {
        let a = try RoleAssignment(worldSize: 7, learners: 2)
        XCTAssertEqual(a.learnerRanks, [0, 1])
        XCTAssertEqual(a.workerRanks, [2, 3, 4, 5, 6])
        XCTAssertEqual(a.workerRanks.map { a.learner(forWorker: $0)! }, [0, 1, 0, 1, 0])
        XCTAssertEqual(a.workers(ofLearner: 0), [2, 4, 6])
        XCTAssertEqual(a.workers(ofLearner: 1), [3, 5])
        XCTAssertEqual(a.workers(ofLearner: 2), [])
    }

    func testColocateMakesEveryRankBoth() throws {
        let a = try RoleAssignment(worldSize: 3, colocate: true)
        XCTAssertEqual(a.roles, [.both, .both, .both])
        XCTAssertEqual(a.learnerRanks, [0, 1, 2])
        XCTAssertEqual(a.workerRanks, [0, 1, 2])
        XCTAssertEqual(a.learner(forWorker: 2), 2)
        XCTAssertEqual(try RoleAssignment(worldSize: 3, learners: 3, colocate: true), a)
    }

    func testImpossibleRequestsAreErrors() {
        XCTAssertThrowsError(try RoleAssignment(worldSize: 0)) { XCTAssertEqual($0 as? RoleError, .invalidWorldSize(0)) }
        XCTAssertThrowsError(try RoleAssignment(worldSize: 3, learners: 0)) { XCTAssertEqual($0 as? RoleError, .tooFewLearners(0)) }
        XCTAssertThrowsError(try RoleAssignment(worldSize: 3, learners: 3)) { error in
            XCTAssertEqual(error as? RoleError, .tooManyLearners(learners: 3, worldSize: 3))
            XCTAssertTrue("\(error)".contains("--colocate"), "\(error)")
        }
        XCTAssertThrowsError(try RoleAssignment(worldSize: 2, learners: 5))
        XCTAssertThrowsError(try RoleAssignment(worldSize: 4, learners: 2, colocate: true)) {
            XCTAssertEqual($0 as? RoleError, .colocatedLearnerCount(learners: 2, worldSize: 4))
        }
        XCTAssertThrowsError(try RoleAssignment(worldSize: 1, learners: 2))
    }

    func testSplitGivesLearnerAndWorkerCommunicators() throws {
        let roles = try RoleAssignment(worldSize: 5, learners: 2)
        let got = try LocalCommunicator.run(ranks: 5) { comm -> [Int] in
            let c = try roles.split(comm)
            XCTAssertEqual(c.role, roles.role(of: comm.rank))
            // Sum of world ranks inside each group the rank belongs to (-1: not a member).
            let l = try c.learners.map { try $0.allReduce(comm.rank, op: .sum) } ?? -1
            let w = try c.workers.map { try $0.allReduce(comm.rank, op: .sum) } ?? -1
            return [c.learners?.size ?? 0, c.workers?.size ?? 0, l, w]
        }
        XCTAssertEqual(got, [[2, 0, 1, -1], [2, 0, 1, -1], [0, 3, -1, 9], [0, 3, -1, 9], [0, 3, -1, 9]])
    }

    func testSplitWhenColocatedGivesTheWholeWorldTwice() throws {
        let roles = try RoleAssignment(worldSize: 3, colocate: true)
        let got = try LocalCommunicator.run(ranks: 3) { comm -> [Int] in
            let c = try roles.split(comm)
            return [c.learners!.size, c.workers!.size, c.learners!.rank, try c.workers!.allReduce(1, op: .sum)]
        }
        XCTAssertEqual(got, [[3, 3, 0, 3], [3, 3, 1, 3], [3, 3, 2, 3]])
    }
}
