#!/usr/bin/env bash
# Figures of digitflow serve under load, with wrk on loopback (2 wrk threads):
#  1. POST /api/v1/recognize?digits=1 with one 28x28 MNIST test digit (PNG);
#  2. POST /api/v1/recognize with a 5-digit string: five MNIST test digits side by side on a
#     white strip 60 px tall, as cut from a form;
#  3. GET /api/v1/jobs with 1,000 jobs in the store (queued: the server runs no workers).
# Each case: a short warm-up, then --duration seconds; requests/s, p99 latency, the server's
# RSS before and after; any answer that is not 2xx, or any socket error, fails the script.
# Every request carries an API token (Authorization: Bearer). The recognise figures are
# set beside `digitflow bench infer --batch 1` in the same run (digits/s, so the cost of
# HTTP, decoding and the page pipeline shows as a ratio).
# 4 connections by default (2 per wrk thread): the recognise route reads one image at a time
# (one model behind a lock), so more connections only queue, and wrk shares the cores.
# Usage: benchmarks/web_figures.sh [--duration 30] [--connections 4] [--warmup 3]
#        [--jobs 1000] [--threads 2] [--work DIR] [--set KEY=VALUE ...]
# --set goes to digitflow serve (e.g. --set model.partner= --set model.screen= to recognise
# with model.default alone).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
duration=30 connections=4 warmup=3 jobs=1000 threads=2 work=/tmp/digitflow-web-figures
serve_sets=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --set) serve_sets+=(--set "$2"); shift 2 ;;
    -h|--help) sed -n 2,17p "$0"; exit 0 ;;
    *) echo "web_figures: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
digitflow="$root/build/apps/digitflow" mnist="$root/data/mnist/t10k-images-idx3-ubyte"
[[ -x "$digitflow" ]] || { echo "web_figures: build first: cmake --build build --target digitflow" >&2; exit 1; }
command -v wrk >/dev/null || { echo "web_figures: needs wrk (scripts/deps.sh wrk)" >&2; exit 1; }
[[ -f "$mnist" ]] || { echo "web_figures: needs the MNIST test images (scripts/fetch-mnist.sh)" >&2; exit 1; }

rm -rf "$work"
mkdir -p "$work"
cp "$digitflow" "$work/digitflow"  # a rebuild during the run must not pull it away
digitflow="$work/digitflow"
export DIGITFLOW_HOME="$root"
model="$root/models/digits.safetensors"

# --- the images: MNIST test digits 0-4 (7 2 1 0 4), dark ink on white, PNG written with zlib
python3 - "$mnist" "$work/digit.png" "$work/string.png" <<'EOF'
import struct, sys, zlib
data = open(sys.argv[1], 'rb').read()
R, C = struct.unpack('>II', data[8:16])
digit = lambda i: [255 - v for v in data[16 + i * R * C:16 + (i + 1) * R * C]]
def png(path, w, h, px):
    raw = b''.join(b'\0' + bytes(px[y * w:(y + 1) * w]) for y in range(h))
    chunk = lambda t, d: struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 0, 0, 0, 0))
                + chunk(b'IDAT', zlib.compress(raw, 9)) + chunk(b'IEND', b''))
png(sys.argv[2], C, R, digit(0))
s, H, margin = 1.5, 60, 9  # each digit scaled 1.5x (bilinear): 42 px cells on a 60 px strip
cell = int(C * s)
W = 2 * margin + 5 * cell
strip = [255] * (W * H)
for k in range(5):
    d = digit(k)
    for y in range(cell):
        for x in range(cell):
            fy, fx = min(y / s, R - 1.001), min(x / s, C - 1.001)
            y0, x0 = int(fy), int(fx)
            ty, tx = fy - y0, fx - x0
            v = (d[y0 * C + x0] * (1 - tx) * (1 - ty) + d[y0 * C + x0 + 1] * tx * (1 - ty)
                 + d[(y0 + 1) * C + x0] * (1 - tx) * ty + d[(y0 + 1) * C + x0 + 1] * tx * ty)
            strip[(margin + y) * W + margin + k * cell + x] = int(round(v))
png(sys.argv[3], W, H, strip)
EOF

# --- wrk's request: method, body (a file) and token from the environment; answers that are
# not 2xx are counted (wrk's own count lets 3xx through)
cat >"$work/request.lua" <<'EOF'
wrk.method = os.getenv("WRK_METHOD")
local path = os.getenv("WRK_BODY")
if path ~= "" then
  local f = assert(io.open(path, "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "image/png"
end
wrk.headers["Authorization"] = "Bearer " .. os.getenv("WRK_TOKEN")
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) not2xx = 0 end
function response(status, headers, body)
  if status < 200 or status > 299 then not2xx = not2xx + 1 end
end
function done(summary, latency, requests)
  local n = 0
  for _, t in ipairs(threads) do n = n + t:get("not2xx") end
  io.write(string.format("Responses not 2xx: %d\n", n))
end
EOF

# --- the server: a fresh state dir, an administrator, no job workers, on a free port
state="$work/state" password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
echo "$password" | "$digitflow" user add loadtest --admin --password-stdin --state-dir "$state" >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$digitflow" serve --listen "127.0.0.1:$port" --workers 0 --no-inbox --threads "$threads" \
  --state-dir "$state" "${serve_sets[@]}" >"$work/serve.out" 2>"$work/serve.err" &
server=$!
trap 'kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true' EXIT
for ((i = 0; i < 100; i++)); do
  grep -q listening "$work/serve.out" 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$work/serve.err" >&2; echo "web_figures: serve did not start" >&2; exit 1; }
  sleep 0.1
done
grep -q listening "$work/serve.out" || { echo "web_figures: serve is not listening after 10 s" >&2; exit 1; }
url="http://127.0.0.1:$port"
token=$(curl -sf -H 'Content-Type: application/json' \
  -d "{\"username\":\"loadtest\",\"password\":\"$password\",\"token\":true}" "$url/api/v1/login" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
rss_mb() { echo "scale=1; $(ps -o rss= -p "$server") / 1024" | bc; }
rss_start=$(rss_mb)

# --- the jobs: one tiny folder (the digit) POSTed $jobs times over one kept-alive connection
s=$(date +%s.%N)
python3 - "$port" "$token" "$work/digit.png" "$jobs" <<'EOF'
import http.client, sys
port, token, png, n = int(sys.argv[1]), sys.argv[2], open(sys.argv[3], 'rb').read(), int(sys.argv[4])
boundary = 'digitflow-web-figures'
conn = http.client.HTTPConnection('127.0.0.1', port)
for i in range(n):
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nbench-{i:04d}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="digit.png"\r\n'
            'Content-Type: image/png\r\n\r\n').encode() + png + f'\r\n--{boundary}--\r\n'.encode()
    conn.request('POST', '/api/v1/jobs', body, {'Authorization': 'Bearer ' + token,
                 'Content-Type': 'multipart/form-data; boundary=' + boundary})
    r = conn.getresponse()
    answer = r.read()
    if r.status != 201:
        sys.exit(f'web_figures: POST /api/v1/jobs answered {r.status}: {answer[:200]!r}')
EOF
jobs_s=$(echo "$(date +%s.%N) - $s" | bc)
listed=$(curl -sf -H "Authorization: Bearer $token" "$url/api/v1/jobs" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["jobs"]))')
[[ $listed -eq $jobs ]] || { echo "web_figures: the jobs list holds $listed jobs, not $jobs" >&2; exit 1; }

# --- each answer checked once before it is timed
check() {  # check QUERY FILE EXPECTED: the text read must be EXPECTED
  local text
  text=$(curl -sf -H "Authorization: Bearer $token" --data-binary "@$2" "$url/api/v1/recognize$1" |
    python3 -c 'import json, sys; print(" ".join(s["text"] for s in json.load(sys.stdin)["strings"]))')
  [[ $text == "$3" ]] || { echo "web_figures: $2 read as '$text', not '$3'" >&2; exit 1; }
}
check '?digits=1' "$work/digit.png" 7
check '' "$work/string.png" 72104
server_ms() {  # median of the server's own "ms" (decode to answer, under the model lock) over 21 calls
  for i in $(seq 21); do
    curl -sf -H "Authorization: Bearer $token" --data-binary "@$2" "$url/api/v1/recognize$1"
    echo
  done | python3 -c 'import json, sys, statistics; print(statistics.median(json.loads(l)["ms"] for l in sys.stdin if l.strip()))'
}
ms_digit=$(server_ms '?digits=1' "$work/digit.png")
ms_string=$(server_ms '' "$work/string.png")

echo "digitflow serve on 127.0.0.1:$port: --workers 0 --threads $threads, $(nproc) cores," \
     "RSS at start $rss_start MB; $jobs jobs POSTed in $jobs_s s"
echo "wrk: 2 threads, $connections connections, ${warmup} s warm-up then ${duration} s per case"
rows=()
measure() {  # measure NAME METHOD PATH BODY_FILE
  local name="$1" method="$2" path="$3" body="$4" out="$work/wrk-$1.txt"
  WRK_METHOD="$method" WRK_BODY="$body" WRK_TOKEN="$token" \
    wrk -t2 -c"$connections" -d"${warmup}s" -s "$work/request.lua" "$url$path" >"$work/warmup-$name.txt"
  local before after
  before=$(rss_mb)
  WRK_METHOD="$method" WRK_BODY="$body" WRK_TOKEN="$token" \
    wrk -t2 -c"$connections" -d"${duration}s" --latency -s "$work/request.lua" "$url$path" >"$out"
  after=$(rss_mb)
  sed 's/^/  /' "$out"
  local row
  row=$(python3 - "$out" "$name" "$before" "$after" <<'EOF'
import re, sys
text, name, before, after = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3], sys.argv[4]
def grab(pattern, default=None):
    m = re.search(pattern, text)
    if m is None and default is None: sys.exit(f'web_figures: no "{pattern}" in wrk output')
    return m.groups() if m else default
rate = float(grab(r'Requests/sec:\s+([\d.]+)')[0])
total = int(grab(r'(\d+) requests in')[0])
value, unit = grab(r'99%\s+([\d.]+)(us|ms|s)')
p99 = float(value) * {'us': 0.001, 'ms': 1.0, 's': 1000.0}[unit]
socket = sum(map(int, grab(r'Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)', ('0',) * 4)))
not2xx = int(grab(r'Responses not 2xx: (\d+)')[0])
wrk_bad = int(grab(r'Non-2xx or 3xx responses: (\d+)', ('0',))[0])
errors = socket + not2xx + wrk_bad
print(f'{name}|{rate:.1f}|{p99:.2f}|{total}|{errors}|{before}|{after}')
if errors or total == 0:
    print(f'web_figures: {name}: {not2xx} answers not 2xx, {socket} socket errors, {total} requests', file=sys.stderr)
    sys.exit(1)
EOF
) || { echo "web_figures: FAILED: $name had errors (see $out)" >&2; exit 1; }
  rows+=("$row")
}
echo "== POST /api/v1/recognize?digits=1, one 28x28 digit"
measure digit POST '/api/v1/recognize?digits=1' "$work/digit.png"
echo "== POST /api/v1/recognize, one 5-digit string (228x60)"
measure string POST '/api/v1/recognize' "$work/string.png"
echo "== GET /api/v1/jobs, $jobs jobs ($(curl -sf -H "Authorization: Bearer $token" "$url/api/v1/jobs" | wc -c) bytes)"
measure jobs GET '/api/v1/jobs' ''

rss_end=$(rss_mb)
kill "$server"
wait "$server" 2>/dev/null || true
trap - EXIT

# --- the peer figure: the network alone at batch 1, same threads, same model, right after
infer=$(for i in 1 2 3; do
  "$digitflow" bench infer --model "$model" --batch 1 --threads "$threads" --seconds 3 --json
done | python3 -c 'import json, sys; print(" ".join(str(round(json.loads(l)["images_per_s"])) for l in sys.stdin))')

echo
echo "| case | requests/s | p99 latency | requests | errors | server RSS before -> after |"
echo "|---|---|---|---|---|---|"
for row in "${rows[@]}"; do
  IFS='|' read -r name rate p99 total errors before after <<<"$row"
  case "$name" in
    digit) label="POST /api/v1/recognize?digits=1, one 28x28 digit" digit_rate=$rate ;;
    string) label="POST /api/v1/recognize, 5-digit string 228x60" string_rate=$rate ;;
    jobs) label="GET /api/v1/jobs, $jobs jobs" ;;
  esac
  echo "| $label | $rate | $p99 ms | $total | $errors | $before -> $after MB |"
done
echo
echo "server RSS: $rss_start MB at start, $rss_end MB at the end"
echo "server's own recognition time (the answer's \"ms\", median of 21 calls one at a time):" \
     "$ms_digit ms one digit, $ms_string ms the string"
python3 - "$infer" "$digit_rate" "$string_rate" "$threads" <<'EOF'
import statistics, sys
runs = [float(v) for v in sys.argv[1].split()]
infer, digit, string = statistics.median(runs), float(sys.argv[2]), float(sys.argv[3])
print(f'peer: digitflow bench infer --batch 1 --threads {sys.argv[4]} (the network alone, same model): '
      f'{infer:,.0f} digits/s (median of {", ".join(f"{v:,.0f}" for v in runs)}); over HTTP, '
      f'one digit: {digit:,.0f} digits/s = {digit / infer:.2f}x of it; '
      f'the 5-digit string: {5 * string:,.0f} digits/s = {5 * string / infer:.2f}x of it')
EOF
