#!/usr/bin/env bash
# Instructions per request on the pingpong (or pipeline) path, counted by callgrind: repeatable where wall
# time is not, so a regression of the per-request path shows even on a noisy machine.
#
# For each server: start it under callgrind, let the load generator warm the path up, zero the
# counters, run pingpong (C connections, one S-byte line in flight each) for a fixed time, dump
# the counters and divide the instructions by the echoes the load generator checked. Counts
# are user-space instructions of the server process only (system calls cost kernel time that
# callgrind does not see; `syscalls/req` comes from `perf stat -e raw_syscalls:sys_enter` over
# one second of the same load without valgrind, when perf is installed).
#
#   bench/callgrind.sh                         # rill-epoll, rill-uring, epoll peer; C=1 S=64
#   bench/callgrind.sh --connections 100 --servers rill-epoll --annotate
#   bench/callgrind.sh --connections 100 --depth 16    # pipeline: instructions per line
#   bench/callgrind.sh --churn --connections 50        # churn (once mode): per connection
#   bench/callgrind.sh --tls --servers rill-epoll,rill-uring   # the same over TLS (rill only)
#
# Everything it starts it stops by PID; the load generator only targets 127.0.0.1.
set -euo pipefail
{

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build/release
CONNECTIONS=1
SIZE=64
DEPTH=1
CHURN=0
DURATION=3
SERVERS="rill-epoll,rill-uring,epoll"
ANNOTATE=0
NO_BUILD=0
TLS=0

usage() {
  cat <<EOF
usage: bench/callgrind.sh [options]
  --connections N   pingpong connections (default $CONNECTIONS)
  --size S          bytes per line including "\n" (default $SIZE)
  --depth P         lines in flight per connection; above 1 runs pipeline (default $DEPTH)
  --churn           churn instead: servers in once mode, instructions per connection
  --duration SECS   counted time under callgrind (default $DURATION)
  --servers LIST    rill-epoll, rill-uring, epoll (the raw epoll peer), uring (default $SERVERS)
  --tls             rill echo with a certificate made here (ECDSA P-256), the load over TLS;
                    the raw peers have no TLS
  --annotate        print the 25 costliest functions of each counted window
  --build-dir DIR   project build directory (default build/release)
  --no-build        use the binaries already built
EOF
}

while (($#)); do
  case $1 in
    --connections) CONNECTIONS=$2; shift ;;
    --size) SIZE=$2; shift ;;
    --depth) DEPTH=$2; shift ;;
    --churn) CHURN=1 ;;
    --duration) DURATION=$2; shift ;;
    --servers) SERVERS=$2; shift ;;
    --tls) TLS=1 ;;
    --annotate) ANNOTATE=1 ;;
    --build-dir) BUILD=$(realpath -m "$2"); shift ;;
    --no-build) NO_BUILD=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "callgrind.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

note() { echo "callgrind.sh: $*" >&2; }

for tool in valgrind callgrind_control; do
  command -v $tool >/dev/null || { note "$tool not found (apt-get install valgrind)"; exit 2; }
done

if ((!NO_BUILD)); then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" -j"$(nproc)" --target rill_tool loadgen epoll_echo uring_echo >/dev/null
fi
LOADGEN=$BUILD/bench/loadgen
RILL=$BUILD/tools/rill
OUT=$(mktemp -d /tmp/rill-callgrind.XXXXXX)
PORT=$((22000 + RANDOM % 2000))
SERVER_PID=""

cleanup() {
  if [[ -n $SERVER_PID ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

TLS_FLAGS=() LOAD_TLS=()
if ((TLS)); then
  command -v openssl >/dev/null || { note "--tls needs the openssl command"; exit 2; }
  (umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$OUT/key.pem" -out "$OUT/cert.pem" -days 1 -subj /CN=localhost \
    -addext "subjectAltName=IP:127.0.0.1") >"$OUT/openssl.log" 2>&1 ||
    { note "openssl req failed (see $OUT/openssl.log)"; exit 1; }
  TLS_FLAGS=(--tls-cert "$OUT/cert.pem" --tls-key "$OUT/key.pem")
  LOAD_TLS=(--tls)
fi

# Starts server $1 on 127.0.0.1:$PORT, under callgrind when $2 is "callgrind" (else "plain");
# sets SERVER_PID, ADDRESS and LOAD (the pingpong command line for it).
start_server() {
  local name=$1 under=$2
  local -a command env=() tool=()
  local mode=persistent
  ((CHURN)) && mode=once
  case $name in
    # One worker, as bench/run.sh's taskset gives them: with several threads every system
    # call also pays glibc's cancellation-point bookkeeping (~45 instructions).
    rill-epoll) env=(RILL_BACKEND=epoll); command=("$RILL" echo "127.0.0.1:$PORT" --mode $mode --workers 1 "${TLS_FLAGS[@]}") ;;
    rill-uring) env=(RILL_BACKEND=io_uring); command=("$RILL" echo "127.0.0.1:$PORT" --mode $mode --workers 1 "${TLS_FLAGS[@]}") ;;
    epoll | uring) ((TLS)) && { note "$name has no TLS: leave it out of --servers with --tls"; exit 2; } ;;&
    epoll) command=("$BUILD/bench/epoll_echo" --port "$PORT" --mode $mode) ;;
    uring) command=("$BUILD/bench/uring_echo" --port "$PORT" --mode $mode) ;;
    *) note "unknown server $name"; exit 2 ;;
  esac
  [[ $under == callgrind ]] && tool=(valgrind --tool=callgrind --callgrind-out-file="$OUT/$name.%p.out")
  env "${env[@]}" "${tool[@]}" "${command[@]}" >"$OUT/$name.$under.stdout" 2>"$OUT/$name.$under.stderr" &
  SERVER_PID=$!
  ADDRESS=127.0.0.1:$PORT
  LOAD=("$LOADGEN" pingpong --address "$ADDRESS" --connections "$CONNECTIONS" --size "$SIZE" --timeout 20 "${LOAD_TLS[@]}")
  ((DEPTH > 1)) && LOAD=("$LOADGEN" pipeline --depth "$DEPTH" "${LOAD[@]:2}")
  ((CHURN)) && LOAD=("$LOADGEN" churn "${LOAD[@]:2}")
  local probe=pingpong
  ((CHURN)) && probe=churn
  for _ in $(seq 200); do  # valgrind takes a while to start: up to 20 s
    if "$LOADGEN" $probe --address "$ADDRESS" --duration 0.05 --warmup 0 --timeout 1 "${LOAD_TLS[@]}" >/dev/null 2>&1; then return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  note "$name did not start; its stderr:"; cat "$OUT/$name.$under.stderr" >&2; exit 1
}

stop_server() {
  # After the dump: SIGKILL, since a server under valgrind blocked in io_uring_enter does not
  # act on SIGTERM.
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
  PORT=$((PORT + 1))
}

json_field() {  # json_field FIELD <<< JSON (numbers only)
  sed -n "s/.*\"$1\":\([0-9.eE+-]*\).*/\1/p"
}

scenario=pingpong unit=req
((DEPTH > 1)) && scenario="pipeline P=$DEPTH" unit=line
((CHURN)) && scenario="churn (once mode)" unit=conn
((TLS)) && scenario="TLS $scenario"
printf '# callgrind: %s C=%s S=%s, %ss counted; %s\n' "$scenario" "$CONNECTIONS" "$SIZE" "$DURATION" "$(date -u +%Y-%m-%dT%H:%MZ)"
printf '%-11s %10s %12s %12s\n' server "${unit}s" "instr/$unit" "syscalls/$unit"
IFS=, read -r -a servers <<<"$SERVERS"
for name in "${servers[@]}"; do
  start_server "$name" callgrind
  # One load run: its warmup warms buffers, pools and code paths over the connections the
  # count then uses (TLS: their handshakes stay outside it), and the counters are zeroed
  # between the two, with the load paused.
  result=$("${LOAD[@]}" --duration "$DURATION" --warmup 1 \
    --before-measure "callgrind_control -z $SERVER_PID >/dev/null 2>&1" --json | tail -1)
  callgrind_control -d "$SERVER_PID" >/dev/null 2>&1
  requests=$(json_field completed <<<"$result")
  dump=$(ls -t "$OUT/$name.$SERVER_PID.out".* 2>/dev/null | head -1 || true)
  if [[ -z $dump || -z $requests || $requests == 0 ]]; then note "$name: no dump or no requests"; exit 1; fi
  instructions=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p; s/^totals: *\([0-9]*\).*/\1/p' "$dump" | head -1)
  syscalls=-
  stop_server
  if command -v perf >/dev/null; then
    # System calls per request: the same load without valgrind, counted by the kernel's
    # syscall tracepoint (strace would slow each call enough to change the batching).
    start_server "$name" plain
    "${LOAD[@]}" --duration 3 --warmup 0.5 --json >"$OUT/$name.perf-load" &
    load_pid=$!
    sleep 1
    perf stat -x, -e raw_syscalls:sys_enter -p "$SERVER_PID" -o "$OUT/$name.perf" -- sleep 1 >/dev/null 2>&1 || true
    wait "$load_pid" || true
    rate=$(tail -1 "$OUT/$name.perf-load" | json_field rate)
    calls=$(awk -F, '/raw_syscalls/ {print $1}' "$OUT/$name.perf" 2>/dev/null)
    if [[ -n $calls && $calls =~ ^[0-9]+$ && -n $rate ]]; then
      syscalls=$(awk -v c="$calls" -v r="$rate" 'BEGIN {printf "%.2f", c / r}')
    fi
    stop_server
  fi
  printf '%-11s %10s %12s %12s\n' "$name" "$requests" \
    "$(awk -v i="$instructions" -v r="$requests" 'BEGIN {printf "%.0f", i / r}')" "$syscalls"
  if ((ANNOTATE)); then
    # Fiber switches leave callgrind's call stack unbalanced: main and the frames below it get
    # 100% however it is counted, and the default 99% threshold then lists only them. List
    # everything and leave those lines out.
    callgrind_annotate --threshold=100 "$dump" 2>/dev/null | sed -n '/file:function/,$p' | sed 1,2d |
      grep -v '(100.0%)' | head -25
  fi
done
note "dumps kept in $OUT"

}
