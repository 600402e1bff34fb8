/// Learner: the EBFT policy loss, teacher-forced strided forward/backward, gradient
/// all-reduce, AdamW with its learning-rate schedule, and checkpoints.
import Model
import Rollout
