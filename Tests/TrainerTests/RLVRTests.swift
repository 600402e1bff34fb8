import Evaluation
import XCTest
@testable import Learner
@testable import Model
import Rollout
@testable import Trainer

final class RLVRTests: XCTestCase {
    /// RLOO: A_i = r_i − mean of the other samples' rewards; they sum to zero.
    func testLeaveOneOutAdvantages() {
        let a = RLVRTask.advantages([1, 0, 0, 1])
        for (x, y) in zip(a, [2.0 / 3, -2.0 / 3, -2.0 / 3, 2.0 / 3]) { XCTAssertEqual(x, y, accuracy: 1e-12) }
        let b = RLVRTask.advantages([0.5, 0.2, 0.2])
        for (x, y) in zip(b, [0.3, -0.15, -0.15]) { XCTAssertEqual(x, y, accuracy: 1e-12) }
        XCTAssertEqual(RLVRTask.advantages([0.3, 0.3]), [0, 0])
        XCTAssertEqual(RLVRTask.advantages([1]), [0])
    }

    /// Sample-level samples the same tokens for a prompt whatever else is in the batch, when
    /// keyed; and keeps the stop token when asked.
    func testKeyedSamplingAndKeptStopToken() {
        let p = ParameterStore(config: .tiny(vocabSize: 29))
        p.randomize(seed: 5, std: 0.3)
        let m = Transformer(parameters: p)
        let prompts: [[Int32]] = [[1, 2, 3], [4, 5], [6, 7, 8]]
        let all = Downstream.sample(model: m, prompts: prompts, samples: 2, maxNewTokens: 6, temperature: 1, topP: 1,
                                    seed: 3, stop: [], promptKeys: [10, 11, 12])
        let one = Downstream.sample(model: m, prompts: [prompts[2]], samples: 2, maxNewTokens: 6, temperature: 1, topP: 1,
                                    seed: 3, stop: [], promptKeys: [12])
        XCTAssertEqual(all[2], one[0])
        let unkeyed = Downstream.sample(model: m, prompts: [prompts[2]], samples: 2, maxNewTokens: 6, temperature: 1,
                                        topP: 1, seed: 3, stop: [])
        XCTAssertNotEqual(unkeyed[0], one[0], "the key, not the position, drives the draws")
        let stop = all[0][0][1]
        let kept = Downstream.sample(model: m, prompts: prompts, samples: 2, maxNewTokens: 6, temperature: 1, topP: 1,
                                     seed: 3, stop: [stop], promptKeys: [10, 11, 12], keepStop: true)
        XCTAssertEqual(kept[0][0], Array(all[0][0].prefix(2)))
        for (a, b) in zip(all.joined(), kept.joined()) {
            if let i = a.firstIndex(of: stop) { XCTAssertEqual(b, Array(a[...i])) } else { XCTAssertEqual(a, b) }
        }
    }

    func tokenizer() throws -> BPETokenizer {
        try BPETokenizer(gguf: GGUFFile(path: try ModelLocator.defaultGGUF()))
    }

    /// Translation reward: sentence BLEU / 100 of the first line, the stop token ignored.
    func testTranslationReward() throws {
        let tok = try tokenizer()
        let pair = QAPair(question: TranslationPairs.question(german: "Die Katze schläft auf dem Sofa."),
                          answer: TranslationPairs.answer(english: "The cat sleeps on the sofa."), key: "k")
        let task = try RLVRTask(source: .translation([pair]), tokenizer: tok, sandbox: nil)
        let nl = try XCTUnwrap(tok.id(of: "Ċ"))
        XCTAssertTrue(task.stop.contains(nl))
        let exact = tok.encode(" The cat sleeps on the sofa.", allowSpecial: false) + [nl]
        let partial = tok.encode(" The dog sleeps on a chair.", allowSpecial: false)
        let r = try task.rewards(questions: [0], completions: [[exact, partial, []]])
        XCTAssertEqual(r[0][0], 1, accuracy: 1e-9)
        XCTAssertEqual(r[0][1], BLEU.sentence(hypothesis: "The dog sleeps on a chair.", reference: "The cat sleeps on the sofa.").score / 100,
                       accuracy: 1e-9)
        XCTAssertGreaterThan(r[0][1], 0)
        XCTAssertLessThan(r[0][1], 0.5)
        XCTAssertEqual(r[0][2], 0)
    }

    /// Code reward: 1 for the canonical body of a doctest problem, 0 for a wrong one.
    func testCodeRewardRunsTheDoctests() throws {
        let tok = try tokenizer()
        let problems = try DoctestProblems.load().train
        let p = try XCTUnwrap(problems.first { $0.problem.taskID == "stdlib/statistics.median_low" })
        let task = try RLVRTask(source: .code([p]), tokenizer: tok, sandbox: try Sandbox())
        XCTAssertEqual(task.prompts[0], tok.encode(String(p.modelPrompt.dropLast()), allowSpecial: false))
        let good = tok.encode("\n" + p.problem.canonicalSolution, allowSpecial: false) + [tok.eos]
        let bad = tok.encode("\n    return data[0]\n", allowSpecial: false)
        let r = try task.rewards(questions: [0, 0], completions: [[good], [bad, good]])
        XCTAssertEqual(r, [[1], [0, 1]])
    }

    /// Hostile completions score 0, are contained, and the trainer's process carries on: the
    /// next completion is scored normally.
    func testHostileCompletionsScoreZeroAndScoringGoesOn() throws {
        let tok = try tokenizer()
        let p = try XCTUnwrap(try DoctestProblems.load().train.first { $0.problem.taskID == "stdlib/statistics.median_low" })
        let task = try RLVRTask(source: .code([p]), tokenizer: tok, sandbox: try Sandbox())
        let hostile = [
            "    while True:\n        pass\n",
            "    import os\n    os.kill(-1, 9)\n",
            "    import os\n    while True:\n        os.fork()\n",
            "    x = bytearray(1 << 34)\n",
            "    open('/tmp/escaped-\(getpid())', 'w').write('x')\n",
            "    import socket\n    socket.create_connection(('127.0.0.1', 22), timeout=1)\n",
        ].map { tok.encode("\n" + $0, allowSpecial: false) }
        let good = tok.encode("\n" + p.problem.canonicalSolution, allowSpecial: false)
        let r = try task.rewards(questions: [0], completions: [hostile + [good]])
        XCTAssertEqual(r[0], [0, 0, 0, 0, 0, 0, 1])
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/tmp/escaped-\(getpid())"))
    }

    /// The whole-completion policy gradient: micro-batching with right padding gives the same
    /// gradient as one sequence at a time, and a step along it raises the log-probability of
    /// the completion with the positive advantage and lowers the other.
    func testCompletionGradientIsPaddingInvariantAndPointsTheRightWay() {
        let p = ParameterStore(config: .tiny(vocabSize: 31))
        p.randomize(seed: 7, std: 0.2)
        let m = Transformer(parameters: p)
        let prompts: [[Int32]] = [[1, 2, 3, 4], [5, 6], [7, 8, 9]]
        let completions: [[Int32]] = [[10, 11, 12], [13, 14, 15, 16, 17], [18]]
        let adv: [Float] = [1, -1, 0.5]
        func grads(maxTokens: Int) -> (ParameterStore, LearnerStats) {
            let l = PolicyLearner(model: m, geometry: try! StridedGeometry(P: 8, c: 2, G: 2, s: 2), temperature: 0.7, ceCoef: 0)
            l.maxTokensPerBatch = maxTokens
            let s = l.accumulateCompletions(prompts: prompts, completions: completions, advantages: adv, totalSequences: 3,
                                            tokenScale: 5, pad: 0)
            return (l.grads, s)
        }
        let (one, s1) = grads(maxTokens: 1)
        let (batched, s2) = grads(maxTokens: 1000)
        XCTAssertEqual(s1.sequences, 3)
        XCTAssertEqual(s1.rlSum, s2.rlSum, accuracy: 1e-5)
        var worst: Float = 0, norm: Float = 0
        for i in 0..<one.count {
            worst = max(worst, abs(one.pointer[i] - batched.pointer[i]))
            norm = max(norm, abs(one.pointer[i]))
        }
        XCTAssertGreaterThan(norm, 1e-6)
        XCTAssertLessThan(worst, 1e-5 * max(norm, 1))
        func logp(_ i: Int) -> Double {
            let seq = prompts[i] + completions[i]
            let preds = (0..<completions[i].count).map {
                Prediction(row: prompts[i].count - 1 + $0, target: completions[i][$0], invTemperature: 1 / 0.7)
            }
            let g = ParameterStore(like: m.parameters)
            return m.lossAndGradient(tokens: seq, layout: .causal(length: seq.count), predictions: preds, grads: g)
                .logProbs.reduce(0.0) { $0 + Double($1) }
        }
        let before = (logp(0), logp(1))
        for i in 0..<p.count { p.pointer[i] -= 0.05 * batched.pointer[i] }
        XCTAssertGreaterThan(logp(0), before.0)
        XCTAssertLessThan(logp(1), before.1)
    }
}
