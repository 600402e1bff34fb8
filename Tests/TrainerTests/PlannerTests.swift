import Foundation
import XCTest
import Model
import Rollout
@testable import Trainer

/// The planner's arithmetic on a model small enough to count by hand (StepCostTests' model:
/// d = 4, 2 layers, 300 parameters; P = 6, c = 2, G = 2, s = 2, K = 2), n = 2 samples, 2 chunks.
/// Per chunk (StepCostTests): sampling 3712 for the chunk + 1376 per sample, features 1776 +
/// 1248 per sample, learner 11856 + 8448 per sample; gradient 1200 bytes, optimizer 8400 bytes.
/// The calibration is made up so that every rate is round: sampling 1000 FLOP/s, features
/// 2000, backward 4000 (with 2 threads), rewards 0.1 s per chunk, optimizer 8400 bytes/s,
/// 0.5 s of other work. An experience is 68 + 4·(6 + 2·4 + 3·2) = 148 bytes on the wire.
final class PlannerTests: XCTestCase {
    let model = ModelConfig(dim: 4, layers: 2, heads: 2, kvHeads: 1, headDim: 2, ffnDim: 6, vocabSize: 10)

    func geometry() throws -> StridedGeometry { try StridedGeometry(P: 6, c: 2, G: 2, s: 2) }

    func calibration() throws -> PlanCalibration {
        PlanCalibration(threads: 2, cores: 2, model: model, trainedParameters: 300, geometry: try geometry(), samples: 2,
                        chunks: 2, criticLayers: 1,
                        sample: .init(seconds: 1, flops: 1000), features: .init(seconds: 1, flops: 2000),
                        reward: .init(seconds: 0.2), backward: .init(seconds: 1, flops: 4000),
                        optimizer: .init(seconds: 1, bytes: 8400), other: 0.5, step: 10, memcpyBandwidth: 4e6)
    }

    func run() throws -> Planner.Run {
        Planner.Run(model: model, geometry: try geometry(), samples: 2, chunks: 2, criticLayers: 1, trainedParameters: 300)
    }

    /// Within a host 1000 bytes/s + 1 ms per message; between hosts 100 bytes/s + 10 ms.
    func cluster(ranks: Int, hosts: Int = 1, placement: PlanCluster.Placement = .block) -> PlanCluster {
        PlanCluster(ranks: ranks, hosts: hosts, coresPerHost: 2, placement: placement, bandwidth: 100, latency: 0.01,
                    intraBandwidth: 1000, intraLatency: 0.001)
    }

    func planner(_ c: PlanCluster) throws -> Planner { try Planner(calibration: try calibration(), cluster: c, run: try run()) }

    func assertClose(_ a: Double, _ b: Double, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        // Double arithmetic on numbers of this size: a few ulps.
        XCTAssertEqual(a, b, accuracy: 1e-12 * max(1, abs(b)), what, file: file, line: line)
    }

    func bytes(_ p: Planner.Prediction) -> [String: Double] {
        Dictionary(uniqueKeysWithValues: p.links.map { ("\($0.from)>\($0.to)", $0.bytes) })
    }

    func testExperienceBytesEqualTheWireEncoding() throws {
        let e = Experience(chunkID: 7, sample: 1, chunk: [Int32](repeating: 3, count: 6), generated: [1, 2, 3, 4],
                           sampleLogProbs: [0, 0, 0, 0], advantages: [1, 2], alignment: [1, 2], diversity: [1, 2], policyVersion: 0)
        XCTAssertEqual(Double(ExperienceWire.encode([e]).count), 8 + (try run()).experienceBytes)
        XCTAssertEqual(try run().experienceBytes, 148)
    }

    /// np 1: 2 BLAS threads, full speed. Rollout of 2 chunks: sampling 2·6464/1000 = 12.928,
    /// features 2·4272/2000 = 4.272, rewards 0.2; backward 2·28752/4000 = 14.376; optimizer
    /// 8400/8400 = 1; other 0.5. No messages.
    func testColocatedOneRank() throws {
        let p = try planner(cluster(ranks: 1))
        XCTAssertEqual(p.splits, [.colocated(1)])
        let r = try p.predict(.colocated(1))
        assertClose(r.worker["sample"], 12.928, "sample")
        assertClose(r.worker["features"], 4.272, "features")
        assertClose(r.worker["reward"], 0.2, "reward")
        assertClose(r.path["backward"], 14.376, "backward")
        XCTAssertEqual(r.path["allreduce"], 0)
        assertClose(r.path["optimizer"], 1, "optimizer")
        assertClose(r.step, 17.4 + 14.376 + 1 + 0.5, "step")
        XCTAssertTrue(r.links.isEmpty)
    }

    /// 1 learner + 1 worker on 2 cores: launch.sh gives each 1 thread, half the calibrated
    /// speed. Worker: rollout 2·17.4/2 = 34.8. Transfer: one message of 8 + 4·148 = 600 bytes,
    /// 0.001 + 600/1000. Learner: backward 57504/2000 = 28.752, optimizer 2. Broadcast of 1200
    /// bytes: 0.001 + 1.2.
    func testOneLearnerOneWorker() throws {
        let r = try planner(cluster(ranks: 2)).predict(.split(learners: 1))
        assertClose(r.path["rollout"], 34.8, "rollout")
        assertClose(r.worker["sample"], 25.856, "sample")
        assertClose(r.path["transfer"], 0.601, "transfer")
        assertClose(r.path["backward"], 28.752, "backward")
        XCTAssertEqual(r.path["allreduce"], 0)
        assertClose(r.path["optimizer"], 2, "optimizer")
        assertClose(r.path["broadcast"], 1.201, "broadcast")
        assertClose(r.step, 34.8 + 0.601 + 28.752 + 2 + 1.201 + 0.5, "step")
        XCTAssertEqual(bytes(r), ["1>0": 600, "0>1": 1200])
        XCTAssertEqual(r.interHostBytes, 0)
    }

    /// 2 learners + 2 workers on one host of 2 cores (1 thread each, 2 ranks active per phase:
    /// half speed). Worker w gets chunk w: rollout 17.4. Sequence j = 2p + s goes to learner
    /// j mod 2, so each worker sends each learner one experience (156-byte messages, 2 per
    /// rank in turn: 2·(0.001 + 0.156)). Learner 0 holds sample 0 of both chunks:
    /// 2·(11856 + 8448)/2000 = 20.304. Ring all-reduce of 1200 bytes over 2: 2 rounds of
    /// 0.001 + 600/1000. Broadcast chain 0 → 2 → 3: 2 latencies + 1.2.
    func testTwoLearnersTwoWorkersWithAllReduce() throws {
        let r = try planner(cluster(ranks: 4)).predict(.split(learners: 2))
        assertClose(r.path["rollout"], 17.4, "rollout")
        assertClose(r.path["transfer"], 0.314, "transfer")
        assertClose(r.path["backward"], 20.304, "backward")
        assertClose(r.path["allreduce"], 1.202, "allreduce")
        assertClose(r.path["optimizer"], 2, "optimizer")
        assertClose(r.path["broadcast"], 1.202, "broadcast")
        assertClose(r.step, 17.4 + 0.314 + 20.304 + 1.202 + 2 + 1.202 + 0.5, "step")
        XCTAssertEqual(bytes(r), ["2>0": 156, "2>1": 156, "3>0": 156, "3>1": 156,
                                  "0>1": 1200, "1>0": 1200, "0>2": 1200, "2>3": 1200])
    }

    /// The same split on 2 hosts of 2 cores. Block placement (2 slots each): learners on host
    /// 0, workers on host 1. All 4 messages cross: host 1's link carries 624 bytes at 100/s =
    /// 6.24 s (more than a rank's own 2·(0.01 + 1.56)). The broadcast chain 0 → 2 (between
    /// hosts) → 3: 0.01 + 0.001 + 1200/100. Round-robin (0, 2 on host 0; 1, 3 on host 1): the
    /// learners' ring crosses hosts both ways, 2·(0.01 + 600/100).
    func testSeveralHosts() throws {
        let c = cluster(ranks: 4, hosts: 2)
        XCTAssertEqual((0..<4).map(c.host(of:)), [0, 0, 1, 1])
        let r = try planner(c).predict(.split(learners: 2))
        assertClose(r.path["rollout"], 17.4, "rollout")
        assertClose(r.path["transfer"], 6.24, "transfer")
        assertClose(r.path["allreduce"], 1.202, "allreduce")
        assertClose(r.path["broadcast"], 12.011, "broadcast")
        assertClose(r.step, 17.4 + 6.24 + 20.304 + 1.202 + 2 + 12.011 + 0.5, "step")
        XCTAssertEqual(r.interHostBytes, 4 * 156 + 1200)

        let rr = cluster(ranks: 4, hosts: 2, placement: .roundRobin)
        XCTAssertEqual((0..<4).map(rr.host(of:)), [0, 1, 0, 1])
        assertClose(try planner(rr).predict(.split(learners: 2)).path["allreduce"], 12.02, "allreduce between hosts")
        // Block placement of 3 ranks on 2 hosts: 2 slots each, ranks 0, 1 | 2.
        XCTAssertEqual((0..<3).map(cluster(ranks: 3, hosts: 2).host(of:)), [0, 0, 1])
    }

    /// Colocated over 2 ranks (1 chunk each, half speed): rollout 17.4, backward 28752/2000,
    /// all-reduce 1.202, optimizer 2: faster than 1 + 1, so it is recommended; among separate
    /// roles (what `--learners auto` chooses from) L = 1 is the only split.
    /// At N = 4 on one host L = 2 (above) beats L = 1 (3 workers on 2 cores; one learner does all
    /// the backward), L = 3 (one worker samples everything) and colocated 4 (4 ranks on 2 cores).
    func testRecommendationIsTheFastest() throws {
        let two = try planner(cluster(ranks: 2)).predictAll()
        XCTAssertEqual(two.map(\.split), [.split(learners: 1), .colocated(2)])
        assertClose(two[1].step, 17.4 + 14.376 + 1.202 + 2 + 0.5, "colocated 2")
        XCTAssertEqual(Planner.fastest(two)?.split, .colocated(2))
        XCTAssertEqual(Planner.fastest(two, separateRolesOnly: true)?.split, .split(learners: 1))

        let four = try planner(cluster(ranks: 4)).predictAll()
        XCTAssertEqual(four.map(\.split), [.split(learners: 1), .split(learners: 2), .split(learners: 3), .colocated(4)])
        let best = Planner.fastest(four)!
        XCTAssertEqual(best.split, .split(learners: 2))
        XCTAssertEqual(best.step, four.map(\.step).min())
        // L = 1: 3 workers share 2 cores (2/3 core each, a third of the calibrated speed).
        assertClose(four[0].path["rollout"], 26.1, "L=1 rollout")
    }

    /// Two calibrations, 1 thread at 0.8× the 2-thread rates: a rank on 1 core runs at exactly
    /// the 1-thread rates, on half a core at half of them, on 1.5 cores halfway between (0.9×),
    /// on 4 at the 2-thread rates. 1 + 1 on 2 cores (1 core each): rollout 2·8.7/0.8 = 21.75,
    /// backward 57504/3200 = 17.97, optimizer 8400/6720 = 1.25.
    func testRatesInterpolateBetweenCalibratedThreadCounts() throws {
        let two = try calibration()
        var one = two
        one.threads = 1
        for k in [\PlanCalibration.sample, \PlanCalibration.features, \PlanCalibration.reward, \PlanCalibration.backward,
                  \PlanCalibration.optimizer] {
            one[keyPath: k].seconds = two[keyPath: k].seconds / 0.8
        }
        let p = try Planner(calibrations: [two, one], cluster: cluster(ranks: 2), run: try run())
        XCTAssertEqual(p.calibrations.map(\.threads), [1, 2])
        assertClose(p.rates(cores: 1).backward, 3200, "1 core")
        assertClose(p.rates(cores: 0.5).backward, 1600, "half a core")
        assertClose(p.rates(cores: 1.5).sample, 900, "1.5 cores")
        assertClose(p.rates(cores: 4).optimizer, 8400, "beyond the calibrated threads")
        let r = try p.predict(.split(learners: 1))
        assertClose(r.path["rollout"], 21.75, "rollout")
        assertClose(r.path["backward"], 17.97, "backward")
        assertClose(r.path["optimizer"], 1.25, "optimizer")
        XCTAssertThrowsError(try Planner(calibrations: [two, two], cluster: cluster(ranks: 2), run: try run())) {
            XCTAssertTrue("\($0)".contains("same thread count"), "\($0)")
        }
        XCTAssertThrowsError(try Planner(calibrations: [], cluster: cluster(ranks: 2), run: try run()))
    }

    func testBadInputIsRefused() throws {
        XCTAssertThrowsError(try planner(cluster(ranks: 0))) { XCTAssertTrue("\($0)".contains("--ranks must be at least 1"), "\($0)") }
        var c = cluster(ranks: 2)
        c.bandwidth = 0
        XCTAssertThrowsError(try planner(c)) { XCTAssertTrue("\($0)".contains("--bandwidth must be positive"), "\($0)") }
        c = cluster(ranks: 2)
        c.intraBandwidth = -1
        XCTAssertThrowsError(try planner(c)) { XCTAssertTrue("\($0)".contains("--intra-bandwidth"), "\($0)") }
        XCTAssertThrowsError(try planner(cluster(ranks: 2, hosts: 3))) { XCTAssertTrue("\($0)".contains("more than --ranks"), "\($0)") }
        // 4 ranks in blocks of 2 fill only 2 of 3 hosts.
        XCTAssertThrowsError(try planner(cluster(ranks: 4, hosts: 3))) { XCTAssertTrue("\($0)".contains("leaves a host empty"), "\($0)") }
        XCTAssertNoThrow(try planner(cluster(ranks: 4, hosts: 3, placement: .roundRobin)))
        let p = try planner(cluster(ranks: 3))
        XCTAssertThrowsError(try p.predict(.split(learners: 3)))
        XCTAssertThrowsError(try p.predict(.colocated(2)))
        var cal = try calibration()
        cal.backward.seconds = 0
        XCTAssertThrowsError(try Planner(calibration: cal, cluster: cluster(ranks: 1), run: try run())) {
            XCTAssertTrue("\($0)".contains("backward.seconds must be positive"), "\($0)")
        }
    }

    func testCalibrationFileRoundTripAndMissingFields() throws {
        let cal = try calibration()
        let path = NSTemporaryDirectory() + "plan-calibration-\(getpid()).json"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try cal.write(to: path)
        XCTAssertEqual(try PlanCalibration.load(path: path), cal)

        let object = try JSONSerialization.jsonObject(with: cal.json()) as! [String: Any]
        func without(_ drop: (inout [String: Any]) -> Void) throws -> Data {
            var o = object
            drop(&o)
            return try JSONSerialization.data(withJSONObject: o)
        }
        XCTAssertThrowsError(try PlanCalibration.decode(try without { $0["backward"] = nil })) {
            XCTAssertTrue("\($0)".contains("missing field 'backward'"), "\($0)")
        }
        XCTAssertThrowsError(try PlanCalibration.decode(try without { $0["threads"] = nil })) {
            XCTAssertTrue("\($0)".contains("missing field 'threads'"), "\($0)")
        }
        XCTAssertThrowsError(try PlanCalibration.decode(try without {
            var f = $0["features"] as! [String: Any]
            f["flops"] = nil
            $0["features"] = f
        })) { XCTAssertTrue("\($0)".contains("missing field 'features.flops'"), "\($0)") }
        XCTAssertThrowsError(try PlanCalibration.decode(try without { $0["optimizer"] = ["seconds": 1] })) {
            XCTAssertTrue("\($0)".contains("missing field 'optimizer.bytes'"), "\($0)")
        }
        XCTAssertThrowsError(try PlanCalibration.load(path: path + ".absent")) {
            XCTAssertTrue("\($0)".contains("cannot read"), "\($0)")
        }
    }

    /// `--set learners=auto` is learners 0; resolving it for 4 ranks on the hand-counted cluster
    /// picks L = 2 (testRecommendationIsTheFastest), for 2 ranks L = 1 (colocated is not a
    /// choice of auto), for 1 rank 1; a fixed L is left alone; auto with --colocate is refused.
    func testLearnersAutoResolution() throws {
        var c = TrainConfig()
        try c.apply(override: "learners=auto")
        XCTAssertEqual(c.learners, TrainConfig.autoLearners)
        XCTAssertTrue(c.learnersAuto)
        (c.chunkLength, c.contextLength, c.generateLength, c.stride, c.samplesPerChunk, c.chunksPerStep) = (6, 2, 2, 2, 2, 2)
        XCTAssertNoThrow(try c.validate())
        let cal = try calibration()
        let (four, p4) = try c.resolvingAutoLearners(calibrations: [cal], cluster: cluster(ranks: 4), model: model)
        XCTAssertEqual(four.learners, 2)
        assertClose(p4!.step, 17.4 + 0.314 + 20.304 + 1.202 + 2 + 1.202 + 0.5, "predicted step")
        XCTAssertEqual(try c.resolvingAutoLearners(calibrations: [cal], cluster: cluster(ranks: 2), model: model).0.learners, 1)
        XCTAssertEqual(try c.resolvingAutoLearners(calibrations: [cal], cluster: cluster(ranks: 1), model: model).0.learners, 1)
        var fixed = c
        fixed.learners = 3
        let (same, none) = try fixed.resolvingAutoLearners(calibrations: [cal], cluster: cluster(ranks: 4), model: model)
        XCTAssertEqual(same.learners, 3)
        XCTAssertNil(none)
        var colocated = c
        colocated.colocate = true
        XCTAssertThrowsError(try colocated.resolvingAutoLearners(calibrations: [cal], cluster: cluster(ranks: 4), model: model))
        c.learners = -1
        XCTAssertThrowsError(try c.validate())
        XCTAssertThrowsError(try c.apply(override: "learners=some"))
    }
}
