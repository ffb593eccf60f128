#!/usr/bin/env python3
"""Turns Tesseract TSV output into digitflow's results.jsonl, so that `digitflow score` can
score Tesseract on the same pages and the same terms as a digitflow run.

Usage: benchmarks/tesseract_to_results.py MANIFEST OUT.jsonl

MANIFEST has one tab-separated line per Tesseract run: TSV_FILE, PAGE, FIRST_INDEX.
PAGE is the page file's path relative to the job folder (as in truth.jsonl), FIRST_INDEX
the page_index of the first page in that TSV: 0 for a PNG, JPEG, BMP or a whole multi-page
TIFF, N for page N of a PDF rasterised to its own image. Each page of a TSV (a level-1 row;
its page_num counts from 1) becomes one results line; each word (level 5) whose text is one
or more ASCII digits becomes a string with the word's box and its confidence / 100 (-1 -> 0).
Tesseract gives no per-digit boxes, so "digits" is empty. A TSV that is missing or holds no
page becomes a results line with an "error" (Tesseract's output is in FILE.log beside
FILE.tsv).
Standard library only.
"""
import json
import re
import sys

DIGITS = re.compile(r"[0-9]+")
COLUMNS = ["level", "page_num", "block_num", "par_num", "line_num", "word_num",
           "left", "top", "width", "height", "conf", "text"]


def read_tsv(path):
    """Pages of one TSV file, in order: [(page_num, width, height, [string, ...]), ...]."""
    pages = []
    with open(path, encoding="utf-8", errors="replace") as f:
        header = f.readline().rstrip("\n").split("\t")
        if header[: len(COLUMNS)] != COLUMNS:
            raise ValueError(f"{path}: not a Tesseract TSV (header {header!r})")
        for number, line in enumerate(f, start=2):
            cells = line.rstrip("\n").split("\t")
            if len(cells) < 11:
                continue
            text = cells[11].strip() if len(cells) > 11 else ""
            try:
                level, page_num = int(cells[0]), int(cells[1])
                left, top, width, height = (int(c) for c in cells[6:10])
                conf = float(cells[10])
            except ValueError as e:
                raise ValueError(f"{path}:{number}: {e}") from None
            if level == 1:
                pages.append((page_num, width, height, []))
            elif level == 5 and DIGITS.fullmatch(text):
                if not pages:
                    raise ValueError(f"{path}:{number}: a word before any page row")
                pages[-1][3].append({
                    "text": text,
                    "box": [left, top, width, height],
                    "confidence": round(max(conf, 0.0) / 100.0, 4),
                    "digits": [],
                })
    return pages


def main(argv):
    if len(argv) != 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    manifest, out_path = argv[1], argv[2]
    lines, errors, strings, numbering = [], 0, 0, []
    with open(manifest, encoding="utf-8") as f:
        for row in f:
            row = row.rstrip("\n")
            if not row:
                continue
            tsv, page, first = row.split("\t")
            first = int(first)
            log = (tsv[: -len(".tsv")] if tsv.endswith(".tsv") else tsv) + ".log"
            try:
                pages = read_tsv(tsv)
            except FileNotFoundError:
                pages, why = [], f"Tesseract wrote no TSV (its output: {log})"
            else:
                why = f"Tesseract found no page (its output: {log})"
            if not pages:
                errors += 1
                lines.append({"page": page, "page_index": first, "error": why, "strings": []})
                continue
            for ordinal, (page_num, width, height, found) in enumerate(pages):
                # page_num counts from 1 in each TSV; the ordinal of the page row is what
                # counts, and a TSV whose numbering differs is reported.
                if page_num != ordinal + 1:
                    numbering.append(f"{tsv}: page row {ordinal} has page_num {page_num}")
                strings += len(found)
                lines.append({"page": page, "page_index": first + ordinal,
                              "width": width, "height": height, "strings": found})
    lines.sort(key=lambda r: (r["page"], r["page_index"]))
    with open(out_path, "w", encoding="utf-8") as out:
        for r in lines:
            out.write(json.dumps(r) + "\n")
    for n in numbering:
        print(f"tesseract_to_results: unexpected numbering: {n}", file=sys.stderr)
    print(f"tesseract_to_results: {len(lines)} pages, {strings} strings, {errors} failed -> {out_path}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
