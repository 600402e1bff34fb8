import ArgumentParser
import Foundation
import Model
import Rollout
import Trainer

/// `ebft-dist plan`: the predicted step of every learner/worker split of N ranks.
struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Predict each learner/worker split's phase times, bytes per link and step time; recommend the fastest.",
        discussion: """
            Compute comes from a calibration (`ebft-dist bench step --calibration-out FILE`): FLOP/s of \
            sampling, features and the learner's backward, bytes/s of the optimizer, seconds of rewards \
            and of the rest of the step, all measured at np 1 with some number of BLAS threads. A rank \
            computing on C cores runs at min(C, calibrated threads)/calibrated threads of those rates \
            (linear in cores, no gain assumed beyond the calibrated count); with several calibrations \
            at different thread counts (OPENBLAS_NUM_THREADS=t bench step …), linear between them. The run (preset, --set, \
            --model as for train) sets the FLOPs of each phase (StepCost); without --model the \
            calibration's model is used. Network: each message costs latency + bytes/bandwidth; \
            between hosts a host's link is shared by its ranks; within a host --intra-bandwidth \
            (default: the calibration's memcpy bandwidth / 4, i.e. two copies through shared memory). \
            The gradient all-reduce is a ring (2(L−1)/L of the gradient per learner), the weight \
            broadcast a pipelined chain from learner 0 through the workers. Equations and \
            assumptions: docs/results/planner.md.
            """)

    @OptionGroup var config: ConfigOptions
    @Option(help: "Calibration file written by `ebft-dist bench step --calibration-out` (repeatable: one per BLAS thread count; rates are interpolated between them).")
    var calibration: [String] = []
    @Option(help: "Ranks (N).") var ranks: Int
    @Option(help: "Hosts the ranks are spread over.") var hosts = 1
    @Option(help: "Cores per host (default: the calibration's machine's).") var coresPerHost: Double?
    @Option(help: "BLAS threads (cores) per rank (default: scripts/launch.sh's rule, max(1, ⌊cores per host / ranks on it⌋)).")
    var coresPerRank: Double?
    @Option(help: "Rank placement over hosts: block (mpirun's default with S = ⌈N/H⌉ slots per host) or round-robin (--map-by node).")
    var placement = "block"
    @Flag(help: "All hosts share one pool of --cores-per-host cores (network namespaces on one machine).") var sharedCores = false
    @Option(help: "Bandwidth of each host's link, GB/s each direction (default 1.25 = 10 Gbit/s).") var bandwidth = 1.25
    @Option(help: "Latency per message between hosts, µs.") var latency = 50.0
    @Option(help: "Bandwidth of a transfer within a host, GB/s (default: calibration memcpy bandwidth / 4).")
    var intraBandwidth: Double?
    @Option(help: "Latency per message within a host, µs.") var intraLatency = 1.0
    @Flag(help: "Print every split's links, not only the recommended one's.") var allLinks = false
    @Flag(help: "Print the predictions as one JSON object instead of tables.") var json = false

    func run() throws {
        let (planner, note) = try Self.makePlanner(config: config, calibrationPaths: calibration, ranks: ranks, hosts: hosts,
                                                   coresPerHost: coresPerHost, coresPerRank: coresPerRank, placement: placement,
                                                   sharedCores: sharedCores, bandwidth: bandwidth, latency: latency,
                                                   intraBandwidth: intraBandwidth, intraLatency: intraLatency)
        let predictions = try planner.predictAll()
        let best = Planner.fastest(predictions)!
        if json {
            let data = try JSONSerialization.data(withJSONObject: Self.jsonObject(predictions, best: best, planner: planner),
                                                  options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        for n in note { print(n) }
        let cl = planner.cluster
        print("plan: \(cl.ranks) ranks on \(cl.hosts) host\(cl.hosts == 1 ? "" : "s") (\(cl.placement.rawValue)), "
              + "\(fixed(cl.coresPerHost, 1)) cores per host\(cl.sharedCores ? " shared by all hosts" : ""); "
              + "links \(fixed(cl.bandwidth / 1e9, 3)) GB/s + \(fixed(cl.latency * 1e6, 1)) µs between hosts, "
              + "\(fixed(cl.intraBandwidth / 1e9, 2)) GB/s + \(fixed(cl.intraLatency * 1e6, 1)) µs within")
        print("ranks per host: " + (0..<cl.hosts).map { "\(cl.ranks(onHost: $0))" }.joined(separator: " ")
              + "; BLAS threads per rank: " + (0..<cl.ranks).map { fixed(cl.threads(of: $0), 1) }.joined(separator: " "))
        print("")
        let cols = ["rollout", "transfer", "backward", "allreduce", "optimizer", "broadcast", "other"]
        print(padRight("split", 14) + pad("W", 3) + cols.map { pad($0, 10) }.joined() + pad("step s", 9) + pad("net GB", 8))
        for p in predictions {
            let name = p.split.colocated ? "colocated \(p.split.learners)" : "L=\(p.split.learners)"
            print(padRight(name, 14) + pad("\(p.workers)", 3) + cols.map { pad(fixed(p.path[$0], 3), 10) }.joined()
                  + pad(fixed(p.step, 3), 9) + pad(fixed(p.totalBytes / 1e9, 3), 8))
        }
        print("")
        print("recommended: " + (best.split.colocated ? "--colocate (every rank samples and learns)" : "--learners \(best.split.learners)")
              + ", predicted step \(fixed(best.step, 2)) s")
        if let sep = Planner.fastest(predictions, separateRolesOnly: true), sep.split != best.split {
            print("(`train --learners auto` picks among separate roles: --learners \(sep.split.learners), \(fixed(sep.step, 2)) s)")
        }
        for p in allLinks ? predictions : [best] {
            print("")
            print("\(p.split.colocated ? "colocated \(p.split.learners)" : "L=\(p.split.learners)"): worker phases "
                  + p.worker.phases.map { "\($0.0) \(fixed($0.1, 3))" }.joined(separator: ", ")
                  + "; learner phases " + p.learner.phases.map { "\($0.0) \(fixed($0.1, 3))" }.joined(separator: ", "))
            print("  bytes per step on each link (rank → rank):")
            for l in p.links {
                print("    \(l.from) → \(l.to)  \(pad(fixed(l.bytes / 1e6, 3), 12)) MB  \(l.interHost ? "between hosts \(cl.host(of: l.from)) → \(cl.host(of: l.to))" : "within host \(cl.host(of: l.from))")")
            }
            if p.links.isEmpty { print("    none") }
        }
    }

    static func jsonObject(_ predictions: [Planner.Prediction], best: Planner.Prediction, planner: Planner) -> [String: Any] {
        func role(_ r: Planner.RoleTimes) -> [String: Double] { Dictionary(uniqueKeysWithValues: r.phases.map { ($0.0, $0.1) }) }
        let sep = Planner.fastest(predictions, separateRolesOnly: true)!
        return [
            "ranks": planner.cluster.ranks, "hosts": planner.cluster.hosts,
            "recommended": ["learners": best.split.learners, "colocated": best.split.colocated, "step": best.step],
            "auto_learners": sep.split.colocated ? 1 : sep.split.learners,
            "splits": predictions.map { p -> [String: Any] in
                ["learners": p.split.learners, "colocated": p.split.colocated, "workers": p.workers, "step": p.step,
                 "path": role(p.path), "learner": role(p.learner), "worker": role(p.worker),
                 "links": p.links.map { ["from": $0.from, "to": $0.to, "bytes": $0.bytes, "inter_host": $0.interHost] }]
            },
        ]
    }

    /// The planner for a configuration and cluster options (shared with `train --learners auto`'s
    /// tests of the CLI). Returns notes about the calibration's fit to the run.
    static func makePlanner(config: ConfigOptions, calibrationPaths: [String], ranks: Int, hosts: Int, coresPerHost: Double?,
                            coresPerRank: Double?, placement: String, sharedCores: Bool, bandwidth: Double, latency: Double,
                            intraBandwidth: Double?, intraLatency: Double) throws -> (Planner, [String]) {
        do {
            let c = try config.resolve()
            guard !calibrationPaths.isEmpty else { throw ValidationError("--calibration FILE is required (ebft-dist bench step --calibration-out FILE)") }
            let cals = try calibrationPaths.map { try PlanCalibration.load(path: $0) }
            let cal = cals.max { $0.threads < $1.threads }!
            guard let place = PlanCluster.Placement(rawValue: placement) else {
                throw ValidationError("--placement must be one of \(PlanCluster.Placement.allCases.map(\.rawValue)), got '\(placement)'")
            }
            let model: ModelConfig
            var notes: [String] = []
            if let m = c.model {
                let params = RandomModelSpec.matches(m)
                    ? try RandomModelSpec.make(m, vocab: ModelConfig.smolLM2_135M.vocabSize)
                    : try ModelSource.load(try resolveModelPath(m), log: { emitError("warning: " + $0) })
                model = params.config
            } else {
                model = cal.model
            }
            if model != cal.model {
                notes.append("note: the calibration measured another model (d=\(cal.model.dim), \(cal.model.layers) layers); its FLOP/s are applied to this one")
            }
            let cluster = PlanCluster(ranks: ranks, hosts: hosts, coresPerHost: coresPerHost ?? Double(cal.cores),
                                      coresPerRank: coresPerRank, placement: place, sharedCores: sharedCores,
                                      bandwidth: bandwidth * 1e9, latency: latency * 1e-6,
                                      intraBandwidth: (intraBandwidth.map { $0 * 1e9 }) ?? cals.map(\.memcpyBandwidth).max()! / 4,
                                      intraLatency: intraLatency * 1e-6)
            let run = try Planner.Run(config: c, model: model)
            if run.geometry != cal.geometry || run.samples != cal.samples || run.chunks != cal.chunks {
                notes.append("note: the calibration measured another geometry or step size (P=\(cal.geometry.P), n=\(cal.samples), \(cal.chunks) chunks); its rates are applied to this one")
            }
            return (try Planner(calibrations: cals, cluster: cluster, run: run), notes)
        } catch let e as ValidationError { throw e } catch { throw ValidationError("\(error)") }
    }
}
