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
        let L = Double(c.layers), H = Double(c.heads), hd = Double(c.headDim)
        let blockMatmul = 2 * Double(c.layers == 0 ? 0 : (c.matmulParameters - c.vocabSize * c.dim) / c.layers)
        let head = 2 * Double(c.vocabSize) * Double(c.dim)
        let attnPerKeyLayer = 4 * H * hd
        let P = Double(g.P), K = Double(g.K), G = Double(g.G), nD = Double(n)
        // Σ over chunk positions of visible keys: P(P + 1)/2.
        let chunkKeys = P * (P + 1) / 2
        // Σ over blocks k and tokens t < T of (a_k + t + 1), a_k = c + k·s.
        func generatedKeys(tokensPerBlock T: Double) -> Double {
            let anchors = K * Double(g.c) + Double(g.s) * K * (K - 1) / 2
            return T * anchors + K * T * (T + 1) / 2
        }
        func forward(layers l: Double, tokens: Double, keys: Double, headRows: Double) -> Double {
            l * (tokens * blockMatmul + keys * attnPerKeyLayer) + headRows * head
        }
        // Sampling: the chunk once (its rows at the anchors give each block's first token), then
        // each sample feeds G − 1 tokens per block (the last one is never fed back).
        let sampling = forward(layers: L, tokens: P, keys: chunkKeys, headRows: K)
            + nD * forward(layers: L, tokens: K * (G - 1), keys: generatedKeys(tokensPerBlock: G - 1),
                           headRows: K * (G - 1))
        // Features: the chunk (ground-truth blocks) and every sample's K·G tokens, up to the
        // deepest feature layer, no head.
        let lc = Double(criticLayers)
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
}
