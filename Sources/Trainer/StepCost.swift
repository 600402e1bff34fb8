import Model
import Rollout

/// The arithmetic one EBFT step needs, phase by phase (`bench step`, and the base of a planner):
/// model FLOPs of sampling, features and the learner's forward + backward, and the optimizer's
/// unavoidable memory traffic. These are the FLOPs the step *needs* — every token's work done
/// once, the chunk (the n samples' shared prefix) once per chunk — not what a given
/// implementation runs, so MFU against them also shows work done twice.
///
/// Per token and layer, the linear layers cost `2·(q + k + v + o + 3·ffn)` multiply-adds
/// (`ModelConfig.matmulParameters` without the head), attention `4·heads·headDim` per visible
/// key (`QKᵀ` and `P·V`), the output head `2·vocab·dim` per row whose logits are needed.
/// Visible keys (spec §4): chunk position q sees q + 1 keys; generated token t of block k sees
/// the chunk before its anchor a_k = c + k·s and its block's tokens up to itself, a_k + t + 1.
public struct StepCost: Equatable, Sendable {
    /// Model FLOPs per step.
    public var sampling: Double
    public var features: Double
    public var learner: Double
    /// Bytes the optimizer must move per step: read parameters, gradient, both moments and
    /// write parameters and moments (7 × 4 bytes per trained parameter).
    public var optimizerBytes: Double

    /// One chunk's arithmetic for a model `c`, strided geometry `g`, `n` samples per chunk, a
    /// feature network `criticLayers` deep, and the learner's head rows (the chunk's P − 1 CE rows
    /// are always computed: they give the CE metric). `chunks` chunks per step;
    /// `trainedParameters` defaults to the whole model.
    public init(model c: ModelConfig, geometry g: StridedGeometry, samples n: Int, chunks: Int,
                criticLayers: Int, trainedParameters: Int? = nil) {
        let L = c.layers
        let P = Double(g.P), K = Double(g.K), G = Double(g.G), nD = Double(n)
        // Σ over chunk positions of visible keys: P(P + 1)/2.
        let chunkKeys = P * (P + 1) / 2
        // Σ over blocks k and tokens t < T of (a_k + t + 1), a_k = c + k·s.
        func generatedKeys(tokensPerBlock T: Double) -> Double {
            let anchors = K * Double(g.c) + Double(g.s) * K * (K - 1) / 2
            return T * anchors + K * T * (T + 1) / 2
        }
        func forward(layers l: Int, tokens: Double, keys: Double, headRows: Double) -> Double {
            Self.forward(model: c, layers: l, tokens: tokens, keys: keys, headRows: headRows)
        }
        // Sampling: the chunk once (its rows at the anchors give each block's first token), then
        // each sample feeds G − 1 tokens per block (the last one is never fed back).
        let sampling = forward(layers: L, tokens: P, keys: chunkKeys, headRows: K)
            + nD * forward(layers: L, tokens: K * (G - 1), keys: generatedKeys(tokensPerBlock: G - 1),
                           headRows: K * (G - 1))
        // Features: the chunk (ground-truth blocks) and every sample's K·G tokens, up to the
        // deepest feature layer, no head.
        let lc = criticLayers
        let features = forward(layers: lc, tokens: P, keys: chunkKeys, headRows: 0)
            + nD * forward(layers: lc, tokens: K * G, keys: generatedKeys(tokensPerBlock: G), headRows: 0)
        // Learner: forward + backward (3 × forward) of the chunk and the n samples' tokens, with
        // head rows for the chunk's CE (P − 1) and every generated token (n·K·G).
        let learner = 3 * (forward(layers: L, tokens: P, keys: chunkKeys, headRows: P - 1)
            + nD * forward(layers: L, tokens: K * G, keys: generatedKeys(tokensPerBlock: G), headRows: K * G))
        let ch = Double(chunks)
        self.sampling = ch * sampling
        self.features = ch * features
        self.learner = ch * learner
        self.optimizerBytes = 7 * 4 * Double(trainedParameters ?? c.parameterCount)
    }

    /// Sampling + features + learner.
    public var totalFLOPs: Double { sampling + features + learner }

    /// Model FLOPs of one forward pass of `tokens` rows through `layers` blocks whose rows see
    /// `keys` keys in all (summed over rows), plus `headRows` rows of the output head.
    public static func forward(model c: ModelConfig, layers: Int, tokens: Double, keys: Double,
                               headRows: Double) -> Double {
        let blockMatmul = 2 * Double(c.layers == 0 ? 0 : (c.matmulParameters - c.vocabSize * c.dim) / c.layers)
        return Double(layers) * (tokens * blockMatmul + keys * 4 * Double(c.heads) * Double(c.headDim))
            + headRows * 2 * Double(c.vocabSize) * Double(c.dim)
    }

    /// The SFT baseline's step: forward + backward (3 × forward) of each of `chunks` chunks of
    /// `P` tokens (position q sees q + 1 keys; the head on the P − 1 rows that predict a token).
    public static func sft(model c: ModelConfig, chunkLength P: Int, chunks: Int) -> Double {
        let p = Double(P)
        return Double(chunks) * 3 * forward(model: c, layers: c.layers, tokens: p, keys: p * (p + 1) / 2, headRows: p - 1)
    }

    /// The RLVR baseline's step from its rollouts: for each question, a prompt of `prompt`
    /// tokens and its samples' completion lengths. Sampling needs the prompt's first n − 1 tokens
    /// once per question (prefill), then each sample feeds m tokens (the prompt's last one and
    /// its first m − 1 generated ones) at positions n − 1 … n + m − 2, which see m·n + m(m − 1)/2
    /// keys, with the head on all m rows. The learner's forward on the same sequences has the
    /// same shape (prompt once per question, as a shared prefix; the head on the m rows that
    /// predict the completion), and its forward + backward is 3 × that.
    public static func rlvr(model c: ModelConfig, questions: [(prompt: Int, completions: [Int])])
        -> (sampling: Double, learner: Double) {
        var f = 0.0
        for q in questions {
            let n = Double(q.prompt)
            f += forward(model: c, layers: c.layers, tokens: n - 1, keys: (n - 1) * n / 2, headRows: 0)
            for m in q.completions.map(Double.init) where m > 0 {
                f += forward(model: c, layers: c.layers, tokens: m, keys: m * n + m * (m - 1) / 2, headRows: m)
            }
        }
        return (f, 3 * f)
    }
}
