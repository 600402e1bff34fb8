/// Rollout: corpora and packing, the strided block-parallel sampler, the frozen feature
/// network, rewards, whitening and RLOO advantages, and the Experience type.
import Model
