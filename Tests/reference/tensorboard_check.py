"""Reads a run directory's TensorBoard event file with the `tensorboard` package's own reader and
compares it with the run's metrics.jsonl: every number of every record must be the scalar
`kind/key` at the record's step, with the value rounded to float32 (null -> NaN), and there must
be no other scalar. Also walks the TFRecord framing and checks both CRCs of every record with
tensorboard's masked CRC-32C. Prints one JSON object: {"errors": [...], "scalars": N, "files": F}.

Usage: python3 tensorboard_check.py RUN_DIR
"""
import glob
import json
import math
import os
import struct
import sys

from tensorboard.backend.event_processing import event_accumulator
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def check_framing(path, errors):
    data = open(path, "rb").read()
    pos, n = 0, 0
    while pos < len(data):
        if pos + 12 > len(data):
            errors.append(f"{path}: truncated header at byte {pos}")
            return
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (hcrc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        if hcrc != masked_crc32c(header):
            errors.append(f"{path}: record {n}: length CRC {hcrc:#x} != {masked_crc32c(header):#x}")
        body = data[pos + 12:pos + 12 + length]
        if len(body) < length or pos + 16 + length > len(data):
            errors.append(f"{path}: record {n} truncated")
            return
        (dcrc,) = struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])
        if dcrc != masked_crc32c(body):
            errors.append(f"{path}: record {n}: data CRC {dcrc:#x} != {masked_crc32c(body):#x}")
        pos += 16 + length
        n += 1


def main(run_dir):
    errors = []
    files = sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*")))
    for path in files:
        check_framing(path, errors)
    acc = event_accumulator.EventAccumulator(run_dir, size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    got = {}
    for tag in acc.Tags()["scalars"]:
        for e in acc.Scalars(tag):
            got.setdefault(tag, []).append((e.step, e.value))
    if acc.file_version != 2.0 and files:
        errors.append(f"file_version is {acc.file_version}, expected 2 (brain.Event:2)")
    expected = {}
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            for k, v in rec.items():
                if k == "step" or isinstance(v, str):
                    continue
                value = float("nan") if v is None else f32(float(v))
                expected.setdefault(f"{rec['kind']}/{k}", []).append((rec["step"], value))
    for tag in sorted(set(expected) | set(got)):
        want, have = expected.get(tag, []), got.get(tag, [])
        if len(want) != len(have):
            errors.append(f"{tag}: {len(want)} values in metrics.jsonl, {len(have)} in the event file")
            continue
        for (ws, wv), (hs, hv) in zip(want, have):
            same = (math.isnan(wv) and math.isnan(hv)) or wv == hv
            if ws != hs or not same:
                errors.append(f"{tag}: metrics.jsonl has step {ws} value {wv!r}, event file step {hs} value {hv!r}")
    print(json.dumps({"errors": errors[:20], "scalars": sum(len(v) for v in got.values()), "files": len(files)}))


if __name__ == "__main__":
    main(sys.argv[1])
