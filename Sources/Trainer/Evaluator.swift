import Model
import Rollout

/// Online evaluation pieces (spec §10.1); the trainer splits the validation chunks across its
/// rollout workers and sums these.
public enum Evaluator {
    /// The sampling seed of evaluation repeat `index`: repeat 0 uses the run's validation
    /// stream (as before repeats existed), repeat e > 0 a seed derived from it.
    public static func samplingSeed(run seed: UInt64, index: Int) -> UInt64 {
        let base = CounterRNG.derive(seed, .validationSampling)
        return index == 0 ? base : CounterRNG.bits(seed: base, UInt64(index), 0, 0, 0)
    }

    /// Summed NLL and prediction count of `chunks` under `model`: plain causal teacher forcing,
    /// all P−1 predictions per chunk, T = 1.
    public static func validationNLL(model: Transformer, chunks: [Chunk]) -> (nll: Double, count: Double) {
        var nll = 0.0, count = 0.0
        for c in chunks {
            let x = c.tokens
            let preds = (0..<(x.count - 1)).map { Prediction(row: $0, target: x[$0 + 1]) }
            let lp = model.logProbs(tokens: x, layout: .causal(length: x.count), predictions: preds)
            for v in lp { nll -= Double(v) }
            count += Double(lp.count)
        }
        return (nll, count)
    }
}
