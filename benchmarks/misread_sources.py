#!/usr/bin/env python3
"""Where the digits misread on synthetic pages come from.

    misread_sources.py EVAL.json JOB_DIR RESULTS.jsonl [JOB_DIR RESULTS.jsonl ...]

EVAL.json is `digitflow eval --json [--int8]` on MNIST's test set (its "misread" list: the
test images the model reads wrong as they are). Each JOB_DIR was written by `digitflow synth
--sources` from MNIST's test digits (truth.jsonl, and sources.jsonl naming each digit's
image); RESULTS.jsonl is `digitflow run` on it. Strings are paired as `digitflow score` pairs
them (box IoU >= 0.3, the largest first). In each pair read at the truth's length, every
digit is counted, and each one read wrong:
- whether the model also misreads that digit's MNIST image alone, and with the same digit;
- whether the digit touches or overlaps a neighbour on the page (boxes sharing columns).
"""
import collections
import json
import sys


def load(path):
    pages = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                pages[(r["page"], r.get("page_index", 0))] = r
    return pages


def iou(a, b):
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union else 0.0


def touching(digits, i):
    box = digits[i]["box"]
    for j in (i - 1, i + 1):
        if 0 <= j < len(digits):
            other = digits[j]["box"]
            if min(box[0] + box[2], other[0] + other[2]) > max(box[0], other[0]):
                return True
    return False


def pairs(truth_strings, result_strings):
    """(truth, result) pairs with box IoU >= 0.3, the largest IoU first, each string in one."""
    candidates = sorted(((iou(t["box"], r["box"]), i, j) for i, t in enumerate(truth_strings)
                         for j, r in enumerate(result_strings)), key=lambda c: -c[0])
    paired_truth, paired_result = set(), set()
    for overlap, i, j in candidates:
        if overlap < 0.3 or i in paired_truth or j in paired_result:
            continue
        paired_truth.add(i)
        paired_result.add(j)
        yield truth_strings[i], result_strings[j]


def main(argv):
    if len(argv) < 4 or len(argv) % 2:
        sys.exit(__doc__)
    with open(argv[1]) as f:
        misread = {m["index"]: m for m in json.load(f)["misread"]}
    total = collections.Counter()
    for job, results_path in zip(argv[2::2], argv[3::2]):
        truth, results = load(job + "/truth.jsonl"), load(results_path)
        sources = load(job + "/sources.jsonl")
        c = collections.Counter()
        for key, page in truth.items():
            if sources[key]["set"] != "t10k":
                sys.exit(f"{job}: its digits are MNIST's {sources[key]['set']} set; EVAL.json lists the test set's")
            drawn = sources[key]["strings"]
            if [s["text"] for s in drawn] != [s["text"] for s in page["strings"]]:
                sys.exit(f"{job}: sources.jsonl does not match truth.jsonl on {key[0]}")
            index_of = {id(s): d["mnist"] for s, d in zip(page["strings"], drawn)}
            for t, r in pairs(page["strings"], results.get(key, {}).get("strings", [])):
                if len(t["text"]) != len(r["text"]):
                    continue
                for i, (want, got) in enumerate(zip(t["text"], r["text"])):
                    source = index_of[id(t)][i]
                    c["digits"] += 1
                    c["digits touching"] += touching(t["digits"], i)
                    c["misread alone"] += source in misread
                    if want == got:
                        continue
                    c["misread on the page"] += 1
                    c["  of them touching"] += touching(t["digits"], i)
                    if source in misread:
                        c["  of them misread alone"] += 1
                        c["    as the same digit"] += str(misread[source]["read"]) == got
        total.update(c)
        print(job, dict(c))
    d, m = total["digits"], total["misread on the page"]
    touch, touch_m = total["digits touching"], total["  of them touching"]
    print("all:", dict(total))
    print(f"digits {d}: misread on the page {m} ({100 * m / d:.2f}%); "
          f"{total['  of them misread alone']} of those the model misreads alone too "
          f"({total['    as the same digit']} as the same digit), of {total['misread alone']} page digits "
          f"({100 * total['misread alone'] / d:.2f}%) whose image it misreads; digits in strings read at "
          f"the truth's length only")
    print(f"touching a neighbour: {touch} digits, {touch_m} misread ({100 * touch_m / max(1, touch):.2f}%); "
          f"apart: {d - touch} digits, {m - touch_m} misread ({100 * (m - touch_m) / max(1, d - touch):.2f}%)")


if __name__ == "__main__":
    main(sys.argv)
