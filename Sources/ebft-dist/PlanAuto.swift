import Distributed
import Foundation
import Model
import Trainer

/// `train --learners auto`: rank 0 plans the run on the world as it is (the ranks' hosts from
/// their host names, this host's cores, rank 0's BLAS threads; between hosts the planner's
/// default 10 Gbit/s and 50 µs, within a host the calibration's memcpy bandwidth / 4) from the
/// calibration file `plan-calibration`, or one measured here on one chunk (`PlanMeasure`), and
/// broadcasts its choice. The choice and its prediction go to the log and RUN_DIR/plan.json.
enum AutoLearners {
    static func resolve(world: Communicator, context: RunContext, say: (String) -> Void) throws -> Int {
        if world.size == 1 {
            say("learners auto: one rank runs colocated")
            return 1
        }
        // Each rank's host: FNV-1a of its host name (exact in a Double), gathered.
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, 255)
        var h: UInt32 = 2_166_136_261
        for b in String(cString: name).utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
        let hosts = try world.allGather([Double(h)])
        var choice = -1
        var failure = ""
        if world.rank == 0 {
            do {
                choice = try plan(context: context, hostHashes: hosts, say: say)
            } catch {
                failure = "\(error)"
            }
        }
        try world.politeWait(root: 0)
        choice = try world.broadcast(choice, root: 0)
        guard choice >= 1 else {
            throw AllRanksError(message: "--learners auto: " + (world.rank == 0 ? failure : "rank 0 could not plan the run"), code: 2)
        }
        return choice
    }

    static func plan(context: RunContext, hostHashes: [Double], say: (String) -> Void) throws -> Int {
        let c = context.config
        let n = hostHashes.count
        var calibrations: [PlanCalibration] = []
        for path in c.planCalibrationFiles {
            let cal = try PlanCalibration.load(path: path)
            say("learners auto: calibration \(path), \(cal.threads) thread\(cal.threads == 1 ? "" : "s") (\(cal.note))")
            calibrations.append(cal)
        }
        if calibrations.isEmpty {
            say("learners auto: no plan-calibration file; measuring one chunk on rank 0 …")
            let t0 = Date()
            calibrations = [try PlanMeasure.oneChunk(context: context)]
            say("learners auto: measured in \(String(format: "%.1f", Date().timeIntervalSince(t0))) s")
        }
        var order: [Double] = []
        for x in hostHashes where !order.contains(x) { order.append(x) }
        var cluster = PlanCluster(ranks: n, hosts: order.count, coresPerHost: Double(ProcessInfo.processInfo.activeProcessorCount),
                                  coresPerRank: Double(BLAS.threads), bandwidth: 1.25e9, latency: 50e-6,
                                  intraBandwidth: calibrations.map(\.memcpyBandwidth).max()! / 4, intraLatency: 1e-6)
        cluster.hostMap = hostHashes.map { order.firstIndex(of: $0)! }
        let (resolved, best) = try c.resolvingAutoLearners(calibrations: calibrations, cluster: cluster,
                                                           model: context.policy.parameters.config)
        let l = resolved.learners
        if let best {
            say("learners auto: \(l) learner\(l == 1 ? "" : "s"), \(n - l) rollout worker\(n - l == 1 ? "" : "s"); predicted step "
                + String(format: "%.2f s (", best.step)
                + best.path.phases.map { "\($0.0) " + String(format: "%.2f", $0.1) }.joined(separator: ", ") + ")")
            try? FileManager.default.createDirectory(atPath: c.runDir, withIntermediateDirectories: true)
            let record: [String: Any] = [
                "learners": l, "ranks": n, "hosts": cluster.hosts, "predicted_step": best.step,
                "predicted_path": Dictionary(uniqueKeysWithValues: best.path.phases.map { ($0.0, $0.1) }),
                "calibration": c.planCalibration ?? "measured in-process (one chunk)",
            ]
            if let data = try? JSONSerialization.data(withJSONObject: record, options: [.prettyPrinted, .sortedKeys]) {
                try? data.write(to: URL(fileURLWithPath: c.runDir + "/plan.json"))
            }
        }
        return l
    }
}
