#!/usr/bin/env python3
"""The learning-rate table of the equal-compute comparison (step 1 of scripts/compare.sh).

    scripts/compare.sh rates | scripts/lr_table.py RUNS_DIR RLVR_TAIL > learning-rates.md
    scripts/lr_table.py --score METRICS_JSONL METHOD RLVR_TAIL   # "value se": what the choice compares

stdin: "TASK METHOD CHOSEN NEXT" lines, as `compare.sh rates` prints them. RUNS_DIR holds the
kept runs lr-<task>-<method>-<lr>/ (config.yaml, metrics.jsonl, DONE — or FAILED for a run that
diverged). One row per run, in the order of stdin and then of the rate: steps, training model
FLOPs, validation CE and held-out raw feature matching at step 0 and at the end, RLVR's mean
reward over its last RLVR_TAIL steps, the wall time (a twin's — a run holding TWIN — is that of
its evaluation, and the row names the run it was trained as), and the score the choice used (the column
marked *) with the chosen rate in bold.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sweepstats import mean_se  # noqa: E402


def load(path):
    recs = [json.loads(line) for line in open(path) if line.strip()]
    ev = [r for r in recs if r.get("kind") == "eval"]
    tr = [r for r in recs if r.get("kind") == "train"]
    return ev, tr


def fm(r):
    v = r.get("eval_feature_matching_raw_pass1")
    return "–" if v is None else "%.4f ± %.4f" % (v, r.get("eval_feature_matching_raw_pass1_se") or 0.0)


def tail_reward(tr, n):
    """(mean, SE) of the reward of the last n train records, or None for fewer than two."""
    x = [r["reward"] for r in tr if r.get("reward") is not None][-n:]
    return mean_se(x)[:2] if len(x) >= 2 else None


def score(path, method, n):
    """(value, SE) the learning-rate choice compares, higher is better, or None: EBFT the final
    held-out raw feature matching (SE over sampling seeds), SFT minus the final validation CE
    (no SE), RLVR the mean reward of its last n steps (SE over those steps)."""
    ev, tr = load(path)
    if method == "rlvr":
        return tail_reward(tr, n)
    key = "eval_ce" if method == "sft" else "eval_feature_matching_raw_pass1"
    ev = [r for r in ev if r.get(key) is not None]
    if not ev:
        return None
    r = ev[-1]
    return (-r[key], 0.0) if method == "sft" else (r[key], r.get(key + "_se") or 0.0)


def main():
    if sys.argv[1] == "--score":
        v = score(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        print("nan 0" if v is None else "%r %r" % v)
        return
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
            ev, tr = load(os.path.join(d, "metrics.jsonl"))
            ce = "%.4f → %.4f" % (ev[0]["eval_ce"], ev[-1]["eval_ce"])
            f = "%s → %s" % (fm(ev[0]), fm(ev[-1]))
            t = tail_reward(tr, n) if method == "rlvr" else None
            rw = "–" if t is None else "%.4f ± %.4f" % t
            if method == "sft":
                ce += " *"
            elif method == "ebft":
                f += " *"
            else:
                rw += " *"
            wall = open(os.path.join(d, "DONE")).read().strip()
            twin = os.path.join(d, "TWIN")
            if os.path.isfile(twin):  # code's RLVR row: another run's weights, only evaluated here
                wall += " (evaluation only; %s)" % open(twin).read().split(" (")[0].strip()
            print("| %s | %s | %s | %d | %.3e | %s | %s | %s | %s |" % (
                task, method, shown, tr[-1]["step"], tr[-1]["flops_total"], ce, f, rw, wall))


if __name__ == "__main__":
    main()
