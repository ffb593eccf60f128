#!/usr/bin/env bash
# digitflow beside Tesseract 5 (Debian's tesseract-ocr, English model, digits whitelisted) on
# the same synthetic pages, in the same run: exact-match rate, digit accuracy, false strings
# per page and pages/s for each page kind, scored by `digitflow score` against the truth.
#
# For each kind: `digitflow synth` writes the pages; `digitflow run` reads them (timed);
# Tesseract reads the same files, --psm 6 and then --psm 11 (each run timed), one page file
# per process with OMP_THREAD_LIMIT=1 and THREADS processes at a time, so both use the same
# number of cores. Tesseract cannot read PDF: each PDF page is first rasterised at 300 dpi
# (pdftoppm -gray, THREADS at a time), and that time is added to each Tesseract run. All
# pages are 300 dpi, which Tesseract is told (--dpi 300; the PNG and JPEG files carry no
# resolution). benchmarks/tesseract_to_results.py turns Tesseract's TSV into results.jsonl
# (one string per word of digits). The better mode by exact-match stands for Tesseract in
# the table; both are printed below it. The markdown table goes to stdout, progress to stderr.
#
# Usage: benchmarks/compare_tesseract.sh [--pages N] [--seed S] [--kinds "forms checks free"]
#                                        [--threads T] [--work DIR]
#   --pages N    pages per kind (default 200)      --seed S     synth seed (default 2026)
#   --kinds K    kinds to run (default "forms checks free")
#   --threads T  cores for each engine (default 2)
#   --work DIR   keep pages, results, logs and scores in DIR (default: a folder under /tmp,
#                removed at the end)
set -euo pipefail
export LC_ALL=C
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

die() { echo "compare_tesseract: $*" >&2; exit 1; }
say() { echo "compare_tesseract: $*" >&2; }
usage() { sed -n '/^# Usage:/,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; }

pages=200 seed=2026 kinds="forms checks free" threads=2 work=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --pages|--seed|--kinds|--threads|--work)
      [[ $# -ge 2 ]] || die "$1 needs a value"
      case "$1" in
        --pages) pages="$2" ;; --seed) seed="$2" ;; --kinds) kinds="$2" ;;
        --threads) threads="$2" ;; --work) work="$2" ;;
      esac
      shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage; die "unknown argument: $1" ;;
  esac
done
[[ "$pages" =~ ^[1-9][0-9]*$ ]] || die "--pages must be a positive integer, not '$pages'"
[[ "$seed" =~ ^[0-9]+$ ]] || die "--seed must be a non-negative integer, not '$seed'"
[[ "$threads" =~ ^[1-9][0-9]*$ ]] || die "--threads must be a positive integer, not '$threads'"
read -r -a kind_list <<<"$kinds"
[[ ${#kind_list[@]} -gt 0 ]] || die "--kinds is empty"
for k in "${kind_list[@]}"; do
  [[ "$k" == forms || "$k" == checks || "$k" == free ]] || die "unknown kind '$k' (forms, checks or free)"
done

bin="${BUILD_DIR:-build}/apps/digitflow"
[[ -x "$bin" ]] || die "$bin is not built; build it with
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build --target digitflow -j2
(or scripts/test.sh, which configures, builds and tests)"
scripts/deps.sh tesseract-ocr tesseract-ocr-eng poppler-utils >/dev/null ||
  die "scripts/deps.sh could not install tesseract-ocr, tesseract-ocr-eng and poppler-utils"
for tool in tesseract pdftoppm pdfinfo python3 xargs; do
  command -v "$tool" >/dev/null || die "'$tool' not found on PATH (packages tesseract-ocr, poppler-utils, python3, findutils)"
done
tesseract --list-langs 2>/dev/null | grep -qx eng || die "Tesseract has no 'eng' model (package tesseract-ocr-eng)"
tess_version="$(tesseract --version 2>&1 | head -n 1)"

if [[ -z "$work" ]]; then
  work="$(mktemp -d /tmp/compare_tesseract.XXXXXX)"
  trap 'rm -rf "$work"' EXIT
  say "work folder $work (removed at the end; --work DIR keeps the files)"
else
  mkdir -p "$work" || die "cannot create the work folder $work"
  work="$(cd "$work" && pwd)"
  say "work folder $work"
fi
# A copy of the binary, so that a rebuild while this runs does not change or break it
# (it finds config/ and models/ from the current folder, the repository root).
cp "$bin" "$work/digitflow" || die "cannot copy $bin to $work"
bin="$work/digitflow"
"$bin" --help >/dev/null 2>&1 || die "$bin (copied from the build) does not run; rebuild it and try again"
times="$work/times.tsv"
: >"$times"

# seconds START END: the difference of two $EPOCHREALTIME readings
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

for kind in "${kind_list[@]}"; do
  job="$work/$kind"
  say "$kind: synth $pages pages (seed $seed)"
  "$bin" synth --out "$job" --pages "$pages" --seed "$seed" --kind "$kind" --force >"$job.synth.log" 2>&1 ||
    { tail -n 20 "$job.synth.log" >&2; die "$kind: digitflow synth failed (log: $job.synth.log)"; }
  [[ -s "$job/truth.jsonl" ]] || die "$kind: digitflow synth wrote no $job/truth.jsonl"

  # --- digitflow
  rm -rf "$job-df"
  say "$kind: digitflow run, $threads threads"
  rc=0
  t0=$EPOCHREALTIME
  "$bin" run "$job" --out "$job-df" --threads "$threads" >"$job-df.log" 2>&1 || rc=$?
  t1=$EPOCHREALTIME
  # 3: some pages failed; they are in results.jsonl with an error and scored as such
  [[ $rc -eq 0 || $rc -eq 3 ]] ||
    { tail -n 20 "$job-df.log" >&2; die "$kind: digitflow run failed with status $rc (log: $job-df.log)"; }
  printf '%s\tdigitflow\trun\t%s\n' "$kind" "$(seconds "$t0" "$t1")" >>"$times"
  "$bin" score "$job-df/results.jsonl" "$job/truth.jsonl" --json >"$job-df.score.json" ||
    die "$kind: digitflow score failed on $job-df/results.jsonl"

  # --- Tesseract: the page files, PDF pages rasterised first
  raster="$job-pdf"
  rm -rf "$raster"
  items=()    # input image, page (relative to the job folder), page_index of its first page
  raster_jobs=()
  t0=$EPOCHREALTIME
  while IFS= read -r -d '' file; do
    rel="${file#"$job"/}"
    if [[ "${file,,}" == *.pdf ]]; then
      n="$(pdfinfo "$file" 2>/dev/null | awk '/^Pages:/ { print $2 }')"
      [[ "$n" =~ ^[0-9]+$ ]] || die "$kind: pdfinfo cannot read $file"
      # Each page's size in pixels at 300 dpi. pdftoppm rounds up, so a page 808.00001 px
      # high comes out 809 rows (the extra row at the bottom; the 808 above it are the same
      # either way); cropping to the rounded size keeps the stored page size, which the
      # truth and digitflow use.
      # (0 0: no crop, for a page rotated by 90 degrees.)
      mapfile -t sizes < <(pdfinfo -f 1 -l "$n" "$file" 2>/dev/null | awk '
        /^Page +[0-9]+ size:/ { w[$2] = int($4 * 300 / 72 + 0.5); h[$2] = int($6 * 300 / 72 + 0.5) }
        /^Page +[0-9]+ rot:/ { rot[$2] = $4 % 180 }
        END { for (p = 1; p in w; p++) print (rot[p] ? "0 0" : w[p] " " h[p]) }')
      [[ ${#sizes[@]} -eq $n ]] || die "$kind: pdfinfo gives ${#sizes[@]} page sizes for the $n pages of $file"
      mkdir -p "$(dirname "$raster/$rel")"
      for ((p = 1; p <= n; p++)); do
        read -r width height <<<"${sizes[p - 1]}"
        raster_jobs+=("$file" "$p" "$raster/$rel.p$((p - 1))" "$width" "$height")
        items+=("$raster/$rel.p$((p - 1)).pgm" "$rel" "$((p - 1))")
      done
    else
      items+=("$file" "$rel" 0)
    fi
  done < <(find "$job" -type f \( -iname '*.png' -o -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.bmp' \
             -o -iname '*.tif' -o -iname '*.tiff' -o -iname '*.pdf' \) -print0 | sort -z)
  [[ ${#items[@]} -gt 0 ]] || die "$kind: no page files under $job"
  if [[ ${#raster_jobs[@]} -gt 0 ]]; then
    say "$kind: rasterising $((${#raster_jobs[@]} / 5)) PDF pages at 300 dpi"
    # shellcheck disable=SC2016  # expanded by the inner sh
    printf '%s\0' "${raster_jobs[@]}" |
      xargs -0 -n 5 -P "$threads" sh -c \
        'pdftoppm -r 300 -gray -f "$2" -l "$2" -W "$4" -H "$5" -singlefile "$1" "$3"' _ ||
      die "$kind: pdftoppm failed to rasterise a PDF page under $job"
  fi
  t1=$EPOCHREALTIME
  printf '%s\ttesseract\traster\t%s\n' "$kind" "$(seconds "$t0" "$t1")" >>"$times"

  for psm in 6 11; do
    out="$job-tess-psm$psm"
    rm -rf "$out"
    mkdir -p "$out"
    manifest="$out/manifest.tsv" failed="$out/failed.txt" args=()
    : >"$manifest"
    for ((i = 0; i < ${#items[@]}; i += 3)); do
      input="${items[i]}" rel="${items[i + 1]}" first="${items[i + 2]}"
      if [[ "$input" == "$raster"/* ]]; then base="$out/$rel.p$first"; else base="$out/$rel"; fi
      mkdir -p "$(dirname "$base")"
      args+=("$input" "$base")
      printf '%s\t%s\t%s\n' "$base.tsv" "$rel" "$first" >>"$manifest"
    done
    say "$kind: tesseract --psm $psm, $((${#args[@]} / 2)) files, $threads at a time"
    t0=$EPOCHREALTIME
    # shellcheck disable=SC2016  # expanded by the inner sh
    printf '%s\0' "${args[@]}" |
      PSM="$psm" FAILED="$failed" OMP_THREAD_LIMIT=1 xargs -0 -n 2 -P "$threads" sh -c \
        'tesseract "$1" "$2" --dpi 300 --psm "$PSM" -c tessedit_char_whitelist=0123456789 tsv >"$2.log" 2>&1 ||
           echo "$1" >>"$FAILED"' _
    t1=$EPOCHREALTIME
    printf '%s\ttesseract\tpsm%s\t%s\n' "$kind" "$psm" "$(seconds "$t0" "$t1")" >>"$times"
    if [[ -s "$failed" ]]; then
      nfail="$(wc -l <"$failed")"
      [[ "$nfail" -lt $((${#args[@]} / 2)) ]] ||
        { tail -n 5 "$(head -n 1 "$manifest" | cut -f 1 | sed 's/\.tsv$/.log/')" >&2 || true
          die "$kind: tesseract failed on every file (its output: the .log files under $out)"; }
      say "$kind: tesseract failed on $nfail file(s) (listed in $failed); their pages count as failed"
    fi
    python3 benchmarks/tesseract_to_results.py "$manifest" "$out/results.jsonl" ||
      die "$kind: benchmarks/tesseract_to_results.py failed on $manifest"
    "$bin" score "$out/results.jsonl" "$job/truth.jsonl" --json >"$out.score.json" ||
      die "$kind: digitflow score failed on $out/results.jsonl"
  done
done

cpu="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)"
python3 - "$work" "$times" "$pages" "$seed" "$threads" "$tess_version" "${cpu:-unknown CPU}" \
  "$(date +%Y-%m-%d)" "${kind_list[@]}" <<'PY'
import json, sys
work, times_path, pages, seed, threads, tess, cpu, date, *kinds = sys.argv[1:]
times = {}
for line in open(times_path):
    kind, engine, what, secs = line.rstrip("\n").split("\t")
    times[(kind, engine, what)] = float(secs)

def score(path):
    with open(path) as f:
        return json.load(f)

def pct(x):
    return f"{100 * x:.2f}%"

def ratio(a, b):
    return f"{a / b:.2f}x" if b > 0 else "n/a (Tesseract 0)"

def row(*cells):
    print("| " + " | ".join(cells) + " |")

print(f"digitflow beside {tess} on `digitflow synth` pages: {pages} pages per kind, seed {seed}, "
      f"{threads} cores each ({cpu}, {date}).")
print(f"Command: `benchmarks/compare_tesseract.sh --pages {pages} --seed {seed} "
      f"--kinds \"{' '.join(kinds)}\" --threads {threads}`")
print()
row("kind", "engine", "exact-match", "digit accuracy", "false strings / page", "pages/s")
row(*["---"] * 6)
detail = []
for kind in kinds:
    df = score(f"{work}/{kind}-df.score.json")
    n = df["pages"]
    df_rate = n / times[(kind, "digitflow", "run")]
    raster = times[(kind, "tesseract", "raster")]
    modes = []
    for psm in (6, 11):
        s = score(f"{work}/{kind}-tess-psm{psm}.score.json")
        secs = times[(kind, "tesseract", f"psm{psm}")] + raster
        modes.append((s["exact_rate"], s["digit_accuracy"], -psm, psm, s, n / secs, secs))
        detail.append((kind, psm, s, secs, raster, n / secs))
    best = max(modes)  # by exact-match, then digit accuracy, then the lower psm
    _, _, _, psm, ts, ts_rate, _ = best
    row(kind, "digitflow", pct(df["exact_rate"]), pct(df["digit_accuracy"]),
        f"{df['false_per_page']:.2f}", f"{df_rate:.2f}")
    row(kind, f"Tesseract, psm {psm}", pct(ts["exact_rate"]), pct(ts["digit_accuracy"]),
        f"{ts['false_per_page']:.2f}", f"{ts_rate:.2f}")
    row(kind, "ratio digitflow / Tesseract", ratio(df["exact_rate"], ts["exact_rate"]), "", "",
        ratio(df_rate, ts_rate))
print()
print("pages/s: pages / wall seconds of the engine's whole run (for digitflow one `digitflow run`, "
      "model loading included). "
      "Tesseract: LSTM engine, `eng` model, `-c tessedit_char_whitelist=0123456789 --dpi 300`, "
      "OMP_THREAD_LIMIT=1, one process per page file (a multi-page TIFF is one process); "
      "a string is a TSV word of digits. The better page segmentation mode by exact-match is "
      "shown above; both modes below. Tesseract's time includes rasterising the PDF pages at "
      "300 dpi with pdftoppm (the raster column); digitflow decodes PDF itself.")
print()
row("kind", "Tesseract mode", "exact-match", "digit accuracy", "false strings / page",
    "seconds (raster)", "pages/s")
row(*["---"] * 7)
for kind, psm, s, secs, raster, rate in detail:
    row(kind, f"psm {psm}", pct(s["exact_rate"]), pct(s["digit_accuracy"]),
        f"{s['false_per_page']:.2f}", f"{secs:.1f} ({raster:.1f})", f"{rate:.2f}")
problems = []
for kind in kinds:
    for name, path in [("digitflow", f"{kind}-df")] + [(f"Tesseract psm {p}", f"{kind}-tess-psm{p}") for p in (6, 11)]:
        s = score(f"{work}/{path}.score.json")
        if s["failed_pages"] or s["missing_pages"] or s["extra_pages"]:
            problems.append(f"{kind}, {name}: {s['failed_pages']} failed, {s['missing_pages']} missing, "
                            f"{s['extra_pages']} not in the truth, of {s['pages']} pages "
                            "(failed and missing pages count as all strings missed)")
if problems:
    print()
    print("Pages not read:")
    for p in problems:
        print(f"- {p}")
PY
