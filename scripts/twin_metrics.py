#!/usr/bin/env python3
"""The metrics of a run trained once and evaluated on a second task's data (scripts/compare.sh,
`twin`): RLVR trains on the same verifier questions on qa-code and code, so its code row is its
qa-code run's final weights evaluated on code's validation data and HumanEval.

    scripts/twin_metrics.py METRICS BASE_METRICS

METRICS is the evaluation-only run resumed from the first task's final checkpoint (after step M).
The trainer carried into it the first run's train records up to M and its evaluations before M,
which were made on the first task's data: those are dropped. Its own evaluations are at step M.
BASE_METRICS is the second task's base row at the same seed: its step-0 `eval` records are the
step-0 evaluation of every run of that task and seed (the same weights, validation chunks and
sampling seeds), and they take the dropped ones' place. METRICS is rewritten in place: those
step-0 evaluations, then the train records, then the records of step M.
"""
import json
import sys


def records(path):
    return [json.loads(line) for line in open(path) if line.strip()]


def merge(run, base):
    train = [r for r in run if r.get("kind") == "train"]
    if not train:
        sys.exit("twin_metrics: the run has no train records (was it resumed from a checkpoint?)")
    m = max(r["step"] for r in train)
    if any(r.get("kind") != "train" and r.get("step", -1) > m for r in run):
        sys.exit("twin_metrics: the run has records after step %d: it trained, it is not an evaluation" % m)
    own = [r for r in run if r.get("kind") != "train" and r.get("step") == m]
    if not any(r.get("kind") == "eval" for r in own):
        sys.exit("twin_metrics: the run has no evaluation at step %d, the checkpoint's" % m)
    start = [r for r in base if r.get("kind") == "eval" and r.get("step") == 0]
    if not start:
        sys.exit("twin_metrics: the base run has no step-0 evaluation")
    return start + train + own


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    out = merge(records(sys.argv[1]), records(sys.argv[2]))
    with open(sys.argv[1], "w") as f:
        for r in out:
            f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
