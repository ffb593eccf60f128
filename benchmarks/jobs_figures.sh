#!/usr/bin/env bash
# Figures of the job system:
#  1. jobs claimed (and finished) per second by 4 workers, on SQLite and on a throwaway
#     PostgreSQL server started here (empty jobs: the store's cost alone), median of 3;
#  2. the job system's overhead on a 200-page job: `digitflow submit` + `worker --once`
#     against a plain `digitflow run` of the same folder, same threads, no overlays in
#     either, run in pairs; the overhead is the median over the pairs of worker / plain
#     (pairs, since this shared machine's speed drifts by tens of percent within minutes).
# Usage: benchmarks/jobs_figures.sh [--pages 200] [--threads 2] [--jobs 2000] [--rounds 5] [--work DIR]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pages=200 threads=2 jobs=2000 rounds=5 work=/tmp/digitflow-jobs-figures
while [[ $# -gt 0 ]]; do
  case "$1" in
    --pages) pages="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    -h|--help) sed -n 2,9p "$0"; exit 0 ;;
    *) echo "jobs_figures: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
bench="$root/build/benchmarks/bench_jobs_claim" digitflow="$root/build/apps/digitflow"
for b in "$bench" "$digitflow"; do
  [[ -x "$b" ]] || { echo "jobs_figures: build first: cmake --build build --target digitflow bench_jobs_claim" >&2; exit 1; }
done
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -x "$pg_bin/initdb" ]] || { echo "jobs_figures: PostgreSQL is not installed (scripts/deps.sh installs it)" >&2; exit 1; }

rm -rf "$work"
mkdir -p "$work"
cp "$digitflow" "$work/digitflow"  # a rebuild during the run must not pull it away
digitflow="$work/digitflow"
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

# --- a throwaway PostgreSQL server (as the postgres user when we are root: initdb refuses root)
as_pg=()
if [[ $(id -u) -eq 0 ]]; then as_pg=(runuser -u postgres --); fi
pg="$work/pg"
mkdir -p "$pg"
[[ ${#as_pg[@]} -eq 0 ]] || chown postgres "$pg"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${as_pg[@]}" "$pg_bin/initdb" -D "$pg/data" -U postgres -A trust >"$work/initdb.log" 2>&1
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg/data" -l "$pg/server.log" -w \
  -o "-p $port -k $pg -c listen_addresses=127.0.0.1" start >/dev/null
trap '"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg/data" -m immediate stop >/dev/null 2>&1 || true' EXIT
url="postgresql://postgres@127.0.0.1:$port"

echo "== jobs claimed per second, 4 workers, $jobs empty jobs ($(nproc) cores)"
for store in sqlite postgres; do
  rates=()
  for i in 1 2 3; do
    if [[ $store == sqlite ]]; then
      location="$work/claims-$i.db"
    else
      "${as_pg[@]}" "$pg_bin/psql" -h "$pg" -p "$port" -U postgres -q -c "CREATE DATABASE claims_$i" postgres
      location="$url/claims_$i"
    fi
    line=$("$bench" "$location" "$jobs" 4)
    echo "  $line"
    rates+=("$(sed -E 's/.*: ([0-9]+) jobs\/s.*/\1/' <<<"$line")")
  done
  echo "$store median: $(printf '%s\n' "${rates[@]}" | median) jobs/s"
done

echo "== overhead of the job system on a $pages-page job, $threads threads"
synth="$work/synth" job="$work/job"
"$digitflow" synth --out "$synth" --pages 40 --seed 2027 --kind checks --jpeg-share 0 >/dev/null 2>&1
mkdir -p "$job"
mapfile -t files < <(find "$synth" -name '*.png' | sort)
for ((i = 0; i < pages; i++)); do ln "${files[i % ${#files[@]}]}" "$job/$(printf 'scan-%04d.png' "$i")"; done
plain=() jobs_wall=() submit_wall=() ratios=()
for ((i = 1; i <= rounds; i++)); do
  rm -rf "$work/out"
  s=$(date +%s.%N)
  "$digitflow" run "$job" --out "$work/out" --threads "$threads" >/dev/null 2>&1
  plain+=("$(echo "$(date +%s.%N) - $s" | bc)")

  state="$work/state-$i"
  "$digitflow" user add bench --state-dir "$state" >/dev/null
  s=$(date +%s.%N)
  "$digitflow" submit "$job" --user bench --state-dir "$state" >/dev/null
  m=$(date +%s.%N)
  "$digitflow" worker --once --no-inbox --threads "$threads" --state-dir "$state" --set jobs.overlays=false 2>/dev/null
  e=$(date +%s.%N)
  submit_wall+=("$(echo "$m - $s" | bc)")
  jobs_wall+=("$(echo "$e - $m" | bc)")
  cmp -s "$work/out/results.jsonl" "$state/jobs/1/results.jsonl" || { echo "jobs_figures: results differ on run $i" >&2; exit 1; }
  ratios+=("$(echo "scale=4; ${jobs_wall[-1]} / ${plain[-1]}" | bc)")
  echo "  pair $i: plain ${plain[-1]} s; submit ${submit_wall[-1]} s + worker ${jobs_wall[-1]} s; worker / plain ${ratios[-1]}"
done
p=$(printf '%s\n' "${plain[@]}" | median) w=$(printf '%s\n' "${jobs_wall[@]}" | median) c=$(printf '%s\n' "${submit_wall[@]}" | median)
r=$(printf '%s\n' "${ratios[@]}" | median)
echo "medians: plain run $p s, worker $w s, submit (copy into the state dir) $c s"
echo "job system overhead: median of worker / plain over $rounds pairs = $r ($(echo "scale=1; 100 * ($r - 1)" | bc)%)"
echo "results.jsonl of the job equal those of the plain run in every round"
