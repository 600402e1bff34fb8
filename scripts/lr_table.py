#!/usr/bin/env python3
"""The learning-rate table of the equal-compute comparison (step 1 of scripts/compare.sh).

    scripts/compare.sh rates | scripts/lr_table.py RUNS_DIR RLVR_TAIL > learning-rates.md

stdin: "TASK METHOD CHOSEN NEXT" lines, as `compare.sh rates` prints them. RUNS_DIR holds the
kept runs lr-<task>-<method>-<lr>/ (config.yaml, metrics.jsonl, DONE — or FAILED for a run that
diverged). One row per run, in the order of stdin and then of the rate: steps, training model
FLOPs, validation CE and held-out raw feature matching at step 0 and at the end, RLVR's mean
reward over its last RLVR_TAIL steps, the wall time, and the score the choice used (the column
marked *) with the chosen rate in bold.
"""
import json
import math
import os
import sys


def load(d):
    recs = [json.loads(line) for line in open(os.path.join(d, "metrics.jsonl")) if line.strip()]
    ev = [r for r in recs if r.get("kind") == "eval"]
    tr = [r for r in recs if r.get("kind") == "train"]
    return ev, tr


def fm(r):
    v = r.get("eval_feature_matching_raw_pass1")
    return "–" if v is None else "%.4f ± %.4f" % (v, r.get("eval_feature_matching_raw_pass1_se") or 0.0)


def tail_reward(tr, n):
    x = [r["reward"] for r in tr if r.get("reward") is not None][-n:]
    if len(x) < 2:
        return "–"
    m = sum(x) / len(x)
    se = math.sqrt(sum((v - m) ** 2 for v in x) / (len(x) - 1) / len(x))
    return "%.4f ± %.4f" % (m, se)


def main():
    runs, n = sys.argv[1], int(sys.argv[2])
    print("| task | method | lr | steps | training model FLOPs | val CE (0 → end) | "
          "held-out raw ‖φ_gt‖² − L_CFM (0 → end) | RLVR reward, last %d steps | wall time |" % n)
    print("|---|---|---|---:|---:|---|---|---|---:|")
    for line in sys.stdin:
        parts = line.split()
        if len(parts) < 2:
            continue
        task, method = parts[:2]
        chosen = parts[2] if len(parts) > 2 else None  # none yet: a rate of LRS is unfinished
        prefix = "lr-%s-%s-" % (task, method)
        names = [x for x in os.listdir(runs) if x.startswith(prefix)]
        for name in sorted(names, key=lambda x: float(x[len(prefix):])):
            d = os.path.join(runs, name)
            lr = name[len(prefix):]
            shown = "**%s**" % lr if lr == chosen else lr
            if os.path.isfile(os.path.join(d, "FAILED")):
                print("| %s | %s | %s | diverged | | | | | |" % (task, method, shown))
                continue
            if not os.path.isfile(os.path.join(d, "DONE")):
                continue
            ev, tr = load(d)
            ce = "%.4f → %.4f" % (ev[0]["eval_ce"], ev[-1]["eval_ce"])
            f = "%s → %s" % (fm(ev[0]), fm(ev[-1]))
            rw = tail_reward(tr, n) if method == "rlvr" else "–"
            if method == "sft":
                ce += " *"
            elif method == "ebft":
                f += " *"
            else:
                rw += " *"
            print("| %s | %s | %s | %d | %.3e | %s | %s | %s | %s |" % (
                task, method, shown, tr[-1]["step"], tr[-1]["flops_total"], ce, f, rw,
                open(os.path.join(d, "DONE")).read().strip()))


if __name__ == "__main__":
    main()
