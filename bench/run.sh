#!/usr/bin/env bash
# The speed benchmark: rill's echo server against peer line-echo servers (bench/peers).
#
# Builds everything, then runs every scenario row against every server, interleaved (round 1:
# A B C ..., round 2: A B C ...) so that drift in the machine hits all servers alike, with the
# server and the load generator pinned to the same CPU (taskset -c 1 by default): every figure
# is "what one core does", the client's share included. Prints per row the median of the rounds
# and each server's ratio to raw epoll.
#
#   bench/run.sh                              # full run: 3 rounds, 5 s per measurement
#   bench/run.sh --rounds 3 --duration 2 --warmup 0.5 --only pingpong,churn
#   bench/run.sh --only tls --servers go-tls,asio-tls,rill-tls-uring,rill-tls-epoll
#
# The TLS rows (tls-*) run against the TLS servers only (*-tls*), the others against the plain
# ones only; each run makes a fresh ECDSA P-256 certificate and key with `openssl` in
# BUILD/bench-tls (never committed: the key is made where it is used).
#
# Everything it starts it stops by PID; the load generator only targets 127.0.0.1 and each
# measurement is bounded (duration + warmup + its own timeouts, and `timeout` around it).
set -euo pipefail
# The whole script is one block, so bash reads all of it before running any: editing this
# file during a long run cannot corrupt that run.
{

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build/release
ROUNDS=3
DURATION=5
WARMUP=1
ONLY=""
SERVERS="epoll,uring,go,asio,gambit,rill-uring,rill-epoll,go-tls,asio-tls,rill-tls-uring,rill-tls-epoll"
IDLE_CONNECTIONS=19700  # the hard descriptor limit here is 20000 per process
# Fewer for TLS: each costs a full handshake (1-2 ms of the one CPU, client and server, on this
# VM), and Asio holds ~70 KiB each.
TLS_IDLE_CONNECTIONS=5000
SERVER_CPU=1
CLIENT_CPU=1
BASE_PORT=21000
NO_BUILD=0
INSTALL_DEPS=0

usage() {
  cat <<EOF
usage: bench/run.sh [options]
  --rounds N              rounds of every row x server, interleaved (default $ROUNDS)
  --duration SECS         measured time per run (default $DURATION)
  --warmup SECS           unmeasured load before each measurement (default $WARMUP)
  --only LIST             rows to run, comma-separated: pingpong, pipeline, churn, idle,
                          flood, tls, tls-pingpong, tls-churn, or a row id (pingpong-c1,
                          pingpong-c100, pingpong-c1000, pipeline-c100, churn-c50, idle, flood,
                          tls-pingpong-c1, tls-pingpong-c100, tls-churn-c50,
                          tls-churn-resume-c50, tls-idle)
  --servers LIST          default $SERVERS
                          (the tls-* rows run against the *-tls* servers, the others against
                          the rest); also rill-uring-defer, rill-epoll-defer
                          (rill echo --defer-accept 1: server_options::defer_accept)
  --idle-connections N    connections held by the idle row (default $IDLE_CONNECTIONS)
  --tls-idle-connections N  connections held by the tls-idle row (default $TLS_IDLE_CONNECTIONS)
  --server-cpu N          CPU the servers are pinned to (default $SERVER_CPU)
  --client-cpu N          CPU the load generator is pinned to (default $CLIENT_CPU: the same)
  --build-dir DIR         project build directory (default build/release)
  --no-build              use the binaries already built
  --install-deps          first install the Debian packages the peers need (as root)
EOF
}

while (($#)); do
  case $1 in
    --rounds) ROUNDS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --servers) SERVERS=$2; shift ;;
    --idle-connections) IDLE_CONNECTIONS=$2; shift ;;
    --tls-idle-connections) TLS_IDLE_CONNECTIONS=$2; shift ;;
    --server-cpu) SERVER_CPU=$2; shift ;;
    --client-cpu) CLIENT_CPU=$2; shift ;;
    --build-dir) BUILD=$(realpath -m "$2"); shift ;;
    --no-build) NO_BUILD=1 ;;
    --install-deps) INSTALL_DEPS=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

note() { echo "run.sh: $*" >&2; }

# ------------------------------------------------------------------------------------------
# Build

BIN=$BUILD/bench        # loadgen and the peers
RILL_BUILT=0            # the rill command and examples/echo come from this build

# The peers' toolchains beyond scripts/install-deps.sh (which covers the library, Gambit and
# liburing): Go and standalone Asio, from Debian.
install_deps() {
  [[ -f $ROOT/scripts/install-deps.sh ]] && bash "$ROOT/scripts/install-deps.sh"
  local missing=() p
  for p in golang-go libasio-dev; do
    [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]] || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  note "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

build_all() {
  mkdir -p "$BUILD"
  local log=$BUILD/bench-build.log
  : >"$log"
  if cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DRILL_BUILD_BENCH=ON >>"$log" 2>&1 &&
    cmake --build "$BUILD" -j "$(nproc)" --target loadgen epoll_echo uring_echo >>"$log" 2>&1; then
    cmake --build "$BUILD" -j "$(nproc)" --target asio_echo >>"$log" 2>&1 || note "asio_echo not built: libasio-dev missing (--install-deps)? see $log"
    cmake --build "$BUILD" -j "$(nproc)" --target asio_tls_echo >>"$log" 2>&1 || note "asio_tls_echo not built: libasio-dev or libssl-dev missing? see $log"
    # rill's servers: tools/rill (target rill_tool) and examples/echo; should those targets be
    # renamed, the whole project. rill's rows need a build that passed.
    if cmake --build "$BUILD" -j "$(nproc)" --target rill_tool echo >>"$log" 2>&1 ||
      cmake --build "$BUILD" -j "$(nproc)" >>"$log" 2>&1; then
      RILL_BUILT=1
    else
      note "the project build failed (see $log)"
    fi
  else
    # The library is not buildable (yet): build the suite on its own so the peers still run.
    note "the project does not configure or build (see $log); building bench/ on its own"
    BIN=$BUILD/bench-standalone
    if ! { cmake -S "$ROOT/bench" -B "$BIN" -DCMAKE_BUILD_TYPE=Release && cmake --build "$BIN" -j "$(nproc)"; } >>"$log" 2>&1; then
      note "bench/ does not build either (see $log)"
      exit 1
    fi
  fi

  if command -v go >/dev/null; then
    # Caches inside the build tree: nothing written to $HOME, no module download (std only).
    GOCACHE=$BUILD/go-cache GOPATH=$BUILD/go-path GO111MODULE=off GOFLAGS='' \
      go build -o "$BIN/go_echo" "$ROOT/bench/peers/go_echo.go" >>"$log" 2>&1 || note "go_echo did not build (see $log)"
    GOCACHE=$BUILD/go-cache GOPATH=$BUILD/go-path GO111MODULE=off GOFLAGS='' \
      go build -o "$BIN/go_tls_echo" "$ROOT/bench/peers/go_tls_echo.go" >>"$log" 2>&1 || note "go_tls_echo did not build (see $log)"
  else
    note "go not found (--install-deps, or apt-get install golang-go): the Go peer is skipped"
  fi

  rm -f "$BIN/gambit_echo" "$BIN/gambit_echo.sh"
  if command -v gsc >/dev/null; then
    mkdir -p "$BIN/gambit"  # gsc -exe writes its C files next to the source: use a copy
    cp "$ROOT/bench/peers/gambit_echo.scm" "$BIN/gambit/"
    (cd "$BIN/gambit" && gsc -exe -o "$BIN/gambit_echo" gambit_echo.scm) >>"$log" 2>&1 ||
      note "gsc -exe failed (see $log); the Gambit peer runs interpreted"
  fi
  if [[ ! -x $BIN/gambit_echo ]] && command -v gsi >/dev/null; then
    printf '#!/bin/sh\nexec gsi %q "$@"\n' "$ROOT/bench/peers/gambit_echo.scm" >"$BIN/gambit_echo.sh"
    chmod +x "$BIN/gambit_echo.sh"
  fi
}

((INSTALL_DEPS)) && install_deps
if ((NO_BUILD)); then
  [[ -x $BIN/loadgen ]] || BIN=$BUILD/bench-standalone
  [[ -x $BUILD/tools/rill || -x $BUILD/examples/echo ]] && RILL_BUILT=1
else
  build_all
fi
LOADGEN=$BIN/loadgen
[[ -x $LOADGEN ]] || { note "no load generator at $LOADGEN"; exit 1; }

# ------------------------------------------------------------------------------------------
# Servers and rows

# The TLS servers' certificate: ECDSA P-256, self-signed for 127.0.0.1 and localhost, made
# afresh for each run (the load generator does not verify it: loopback only).
TLS_DIR=$BUILD/bench-tls
TLS_CERT=$TLS_DIR/cert.pem
TLS_KEY=$TLS_DIR/key.pem
TLS_READY=0
RILL_HAS_TLS=""  # does `rill echo` take --tls-cert? (asked once)
make_tls_certificate() {
  command -v openssl >/dev/null || { note "openssl not found: the TLS servers are skipped"; return 0; }
  mkdir -p "$TLS_DIR"
  rm -f "$TLS_CERT" "$TLS_KEY"
  if (umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$TLS_KEY" -out "$TLS_CERT" -days 7 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1") >"$TLS_DIR/openssl.log" 2>&1; then
    TLS_READY=1
  else
    note "openssl req failed (see $TLS_DIR/openssl.log): the TLS servers are skipped"
  fi
}
is_tls_server() { [[ $1 == *-tls* ]]; }

# server_command NAME MODE PORT: sets CMD (an array, run as one process whose PID is the
# server's) and PORT_USED, or returns 1 with WHY set when that server cannot run.
server_command() {
  local name=$1 mode=$2 port=$3
  PORT_USED=$port
  WHY=""
  case $name in
    epoll | uring | go | asio)
      local exe=$BIN/${name}_echo
      [[ -x $exe ]] || { WHY="$exe not built"; return 1; }
      CMD=("$exe" "$port" --mode "$mode") ;;
    go-tls | asio-tls)
      local exe=$BIN/${name%-tls}_tls_echo
      [[ -x $exe ]] || { WHY="$exe not built"; return 1; }
      ((TLS_READY)) || { WHY="no certificate (openssl)"; return 1; }
      CMD=("$exe" "$port" --mode "$mode" --cert "$TLS_CERT" --key "$TLS_KEY") ;;
    rill-tls-uring | rill-tls-epoll)
      local backend=io_uring
      [[ $name == *-epoll ]] && backend=epoll
      [[ -x $BUILD/tools/rill && $RILL_BUILT == 1 ]] || { WHY="$BUILD/tools/rill not built yet"; return 1; }
      if [[ -z $RILL_HAS_TLS ]]; then
        RILL_HAS_TLS=0
        "$BUILD/tools/rill" --help 2>&1 | grep -q -- --tls-cert && RILL_HAS_TLS=1
      fi
      ((RILL_HAS_TLS)) || { WHY="this rill echo has no --tls-cert yet"; return 1; }
      ((TLS_READY)) || { WHY="no certificate (openssl)"; return 1; }
      CMD=(env "RILL_BACKEND=$backend" "$BUILD/tools/rill" echo "127.0.0.1:$port" --mode "$mode"
        --tls-cert "$TLS_CERT" --tls-key "$TLS_KEY") ;;
    gambit)
      if [[ -x $BIN/gambit_echo ]]; then CMD=("$BIN/gambit_echo" "$port" --mode "$mode")
      elif [[ -x $BIN/gambit_echo.sh ]]; then CMD=("$BIN/gambit_echo.sh" "$port" --mode "$mode")
      else WHY="neither gsc nor gsi found"; return 1; fi ;;
    rill-uring | rill-epoll | rill-uring-defer | rill-epoll-defer)
      local backend=io_uring
      [[ $name == rill-epoll* ]] && backend=epoll
      local extra=()
      # -defer: server_options::defer_accept (TCP_DEFER_ACCEPT), which the seed's code does not set.
      [[ $name == *-defer ]] && extra=(--defer-accept 1)
      if [[ $mode == once && ${#extra[@]} == 0 ]]; then
        # The seed's server itself; it listens on 127.0.0.1:2020, fixed.
        [[ -x $BUILD/examples/echo && $RILL_BUILT == 1 ]] || { WHY="$BUILD/examples/echo not built yet"; return 1; }
        PORT_USED=2020
        CMD=(env "RILL_BACKEND=$backend" "$BUILD/examples/echo")
      else
        [[ -x $BUILD/tools/rill && $RILL_BUILT == 1 ]] || { WHY="$BUILD/tools/rill not built yet"; return 1; }
        CMD=(env "RILL_BACKEND=$backend" "$BUILD/tools/rill" echo "127.0.0.1:$port" --mode "$mode" "${extra[@]}")
      fi ;;
    *) WHY="unknown server"; return 1 ;;
  esac
}

# id | load generator arguments | server mode | title [| servers it runs against: default all]
# flood: one connection keeps 65536 lines in flight (its reads never wait on the server's side),
# a probe sends one line at a time; the table shows the probe's round trips, the flood's rate.
ROWS=(
  "pingpong-c1|pingpong --connections 1 --size 64|persistent|pingpong C=1 S=64"
  "pingpong-c100|pingpong --connections 100 --size 64|persistent|pingpong C=100 S=64"
  "pingpong-c1000|pingpong --connections 1000 --size 512|persistent|pingpong C=1000 S=512"
  "pipeline-c100|pipeline --connections 100 --depth 16 --size 64|persistent|pipeline C=100 P=16 S=64"
  "churn-c50|churn --connections 50|once|churn C=50 (once mode)"
  "idle|idle --connections $IDLE_CONNECTIONS|persistent|idle N=$IDLE_CONNECTIONS (server RSS per connection)"
  "flood|flood --connections 2 --depth 65536 --size 64|persistent|flood: 1 connection floods (65536 lines in flight), 1 probe, S=64|epoll,uring,rill-uring,rill-epoll"
  # TLS 1.3 (`rill bench --tls`), ECDSA P-256 certificate; against the TLS servers only.
  "tls-pingpong-c1|pingpong --tls --connections 1 --size 64|persistent|TLS pingpong C=1 S=64|tls"
  "tls-pingpong-c100|pingpong --tls --connections 100 --size 64|persistent|TLS pingpong C=100 S=64|tls"
  "tls-churn-c50|churn --tls --connections 50|once|TLS churn C=50, full handshakes (once mode)|tls"
  "tls-churn-resume-c50|churn --tls-resume --connections 50|once|TLS churn C=50, session resumption (tickets; once mode)|tls"
  "tls-idle|idle --tls --connections $TLS_IDLE_CONNECTIONS --timeout 60|persistent|TLS idle N=$TLS_IDLE_CONNECTIONS (server RSS per connection)|tls"
)

# row_runs_on ROW_SERVERS SERVER: does the row run against SERVER? An empty list: every plain
# server; "tls": every TLS server; else the servers listed.
row_runs_on() {
  if [[ -z $1 ]]; then [[ $2 != *-tls* ]]
  elif [[ $1 == tls ]]; then is_tls_server "$2"
  else [[ ,$1, == *,"$2",* ]]; fi
}

selected() {  # selected ROW_ID: is the row in --only?
  [[ -z $ONLY ]] && return 0
  local want
  for want in ${ONLY//,/ }; do
    [[ $1 == "$want" || $1 == "$want"-* ]] && return 0
  done
  return 1
}

# ------------------------------------------------------------------------------------------
# Running

ulimit -n "$(ulimit -Hn)"  # idle: ~20k descriptors in the server and in the client
OUT=$BUILD/bench-results/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
RESULTS=$OUT/results.tsv
printf 'round\trow\tserver\trate\tunit\tp50_us\tp99_us\tclient_cpu\tserver_cpu\terrors\trss_per_conn_kib\testablished\trate_per_busy\tserver_us_per_op\tmax_us\tlatency_count\ttls_handshakes\ttls_resumed\n' >"$RESULTS"

SERVER_PID=""
stop_server() {
  [[ -n $SERVER_PID ]] || return 0
  kill "$SERVER_PID" 2>/dev/null || true
  local i
  for ((i = 0; i < 30; i++)); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}
trap stop_server EXIT
trap 'exit 130' INT TERM

wait_for_port() {  # until PORT listens (no connection is made), the server dies, or 10 s pass
  local port=$1 i
  for ((i = 0; i < 200; i++)); do
    kill -0 "$SERVER_PID" 2>/dev/null || return 1
    [[ -n $(ss -Hltn "sport = :$port" 2>/dev/null) ]] && return 0
    sleep 0.05
  done
  return 1
}

json_get() { sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p" <<<"$1" | sed "s/^null$//"; }  # null: unknown

run_one() {  # run_one ROUND ROW_ID ARGS MODE SERVER
  local round=$1 row=$2 args=$3 mode=$4 server=$5
  server_command "$server" "$mode" "$NEXT_PORT" || return 0
  local port=$PORT_USED log=$OUT/$row.$server.$round
  NEXT_PORT=$((NEXT_PORT + 1))  # a fresh port per run: no TIME_WAIT left from the last one
  if [[ -n $(ss -Hltn "sport = :$port" 2>/dev/null) ]]; then
    note "port $port is already in use: $server skipped for $row"
    return 0
  fi
  taskset -c "$SERVER_CPU" "${CMD[@]}" >"$log.server" 2>&1 &
  SERVER_PID=$!
  if ! wait_for_port "$port"; then
    note "$server did not listen on $port (see $log.server)"
    stop_server
    printf '%s\t%s\t%s\t\t\t\t\t\t\t1\t\t\n' "$round" "$row" "$server" >>"$RESULTS"
    return 0
  fi
  local bound line status=0
  bound=$(awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN { print int(d + w + 120) }')
  # shellcheck disable=SC2086  # ARGS is a word list
  line=$(timeout "$bound" taskset -c "$CLIENT_CPU" "$LOADGEN" $args --address "127.0.0.1:$port" \
    --duration "$DURATION" --warmup "$WARMUP" --server-pid "$SERVER_PID" --json 2>"$log.loadgen") || status=$?
  stop_server
  local errors failures mismatches
  failures=$(json_get "$line" errors)
  mismatches=$(json_get "$line" mismatches)
  errors=$((${failures:-1} + ${mismatches:-0}))  # no JSON at all counts as a failure
  local rate client_cpu server_cpu per_busy="" server_us=""
  rate=$(json_get "$line" rate)
  client_cpu=$(json_get "$line" client_cpu)
  server_cpu=$(json_get "$line" server_cpu)
  # On one shared CPU the pair's throughput per second of CPU it actually got: what the run
  # would have done had nothing else (a build, a test run) taken turns on that CPU.
  if [[ $SERVER_CPU == "$CLIENT_CPU" && -n $rate && -n $server_cpu ]]; then
    per_busy=$(awk -v r="$rate" -v c="$client_cpu" -v s="$server_cpu" 'BEGIN { if (c + s > 0) printf "%.1f", r / (c + s) }')
  fi
  # The server's own CPU time per line (connection, in churn): its cost, whatever the client's.
  if [[ -n $rate && -n $server_cpu ]]; then
    server_us=$(awk -v r="$rate" -v s="$server_cpu" 'BEGIN { if (r > 0 && s >= 0) printf "%.3f", s * 1e6 / r }')
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$row" "$server" "$rate" \
    "$(json_get "$line" rate_unit)" "$(json_get "$line" p50_us)" "$(json_get "$line" p99_us)" \
    "$client_cpu" "$server_cpu" "$errors" "$(json_get "$line" rss_per_conn_kib)" \
    "$(json_get "$line" established)" "$per_busy" "$server_us" "$(json_get "$line" max_us)" \
    "$(json_get "$line" latency_count)" "$(json_get "$line" tls_handshakes)" \
    "$(json_get "$line" tls_resumed)" >>"$RESULTS"
  local shown=${rate:-?}
  [[ $row == *idle ]] && shown="$(json_get "$line" rss_per_conn_kib) KiB/conn"
  [[ $row == flood ]] && shown="$shown lines/s, probe max $(json_get "$line" max_us) us"
  printf '  round %s  %-15s %-16s %s%s\n' "$round" "$row" "$server" "$shown" \
    "$( ((status == 0)) || echo "  (exit $status, see $log.loadgen)")" >&2
}

IFS=, read -r -a SERVER_LIST <<<"$SERVERS"
for server in "${SERVER_LIST[@]}"; do
  is_tls_server "$server" && { make_tls_certificate; break; }
done
for server in "${SERVER_LIST[@]}"; do
  for mode in persistent once; do
    server_command "$server" "$mode" 1 || note "$server ($mode mode) skipped: $WHY"
  done
done

echo "# rill bench: $(date -u +%Y-%m-%dT%H:%MZ), $(uname -sr), $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1))"
echo "# $ROUNDS rounds, ${DURATION}s measured after ${WARMUP}s warmup; server on CPU $SERVER_CPU, load generator on CPU $CLIENT_CPU"
echo "# raw results: $RESULTS"
NEXT_PORT=$BASE_PORT
for ((round = 1; round <= ROUNDS; round++)); do
  for entry in "${ROWS[@]}"; do
    IFS='|' read -r row args mode title row_servers <<<"$entry"
    selected "$row" || continue
    for server in "${SERVER_LIST[@]}"; do
      row_runs_on "$row_servers" "$server" || continue
      run_one "$round" "$row" "$args" "$mode" "$server"
    done
  done
done

# ------------------------------------------------------------------------------------------
# Table: medians over the rounds, ratios to raw epoll

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
column_of() {  # column_of ROW SERVER FIELD: that field's values over the rounds, one a line
  awk -F'\t' -v r="$1" -v s="$2" -v f="$3" 'NR > 1 && $2 == r && $3 == s && $f != "" { print $f }' "$RESULTS"
}
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { if (v == "") print "-"; else printf f, v }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }
# paired_ratios ROW SERVER: per round, the server's rate over raw epoll's in the same round, one
# a line. Rounds drift (this VM's rates move by ±10% between runs of the same binary); the two
# runs of a round are next to each other, so their ratio is steadier than a ratio of medians.
# A third argument names another base server than epoll (the TLS rows: asio-tls, go-tls).
paired_ratios() {
  awk -F'\t' -v r="$1" -v s="$2" -v b="${3:-epoll}" 'NR > 1 && $2 == r && $4 != "" { if ($3 == b) e[$1] = $4; if ($3 == s) v[$1] = $4 }
    END { for (k in v) if (e[k] > 0) print v[k] / e[k] }' "$RESULTS"
}
# server_per_client ROW SERVER: per run, the server's CPU time over the load generator's, one a
# line. Both share one CPU for the same requests, so this is the server's cost per request in
# units of the client's: it does not move with the VM's speed, which moves rates by ±30% here.
server_per_client() {
  awk -F'\t' -v r="$1" -v s="$2" 'NR > 1 && $2 == r && $3 == s && $9 != "" && $8 > 0 { print $9 / $8 }' "$RESULTS"
}
busy_of() {  # busy_of ROW SERVER: the pair's CPU share per run (client + server), one a line
  awk -F'\t' -v r="$1" -v s="$2" 'NR > 1 && $2 == r && $3 == s && $9 != "" { print $8 + $9 }' "$RESULTS"
}

range_of() {  # the lowest and highest of sorted values, one a line: "LO-HI", or "-" for none
  awk 'NF { if (!n++) lo = $1; hi = $1 } END { if (n) printf "%.2f-%.2f", lo, hi; else print "-" }'
}
has_results() {  # has_results ROW SERVER
  [[ -n $(awk -F'\t' -v r="$1" -v s="$2" 'NR > 1 && $2 == r && $3 == s' "$RESULTS") ]]
}

# The TLS rows: ratios to the TLS peers, Asio + OpenSSL and Go crypto/tls (no raw-epoll floor).
print_tls_row() {  # print_tls_row ROW
  local row=$1 server
  if [[ $row == tls-idle ]]; then
    printf '%-16s %9s %7s %7s %12s %7s\n' server KiB/conn x_asio x_go established errors
    local base_asio base_go rss est
    base_asio=$(column_of "$row" asio-tls 11 | median)
    base_go=$(column_of "$row" go-tls 11 | median)
    for server in "${SERVER_LIST[@]}"; do
      has_results "$row" "$server" || continue
      rss=$(column_of "$row" "$server" 11 | median)
      est=$(column_of "$row" "$server" 12 | median)
      printf '%-16s %9s %7s %7s %12s %7s\n' "$server" "$(fmt "$rss" %.2f)" "$(ratio "$rss" "$base_asio")" \
        "$(ratio "$rss" "$base_go")" "$(fmt "$est" %d)/$TLS_IDLE_CONNECTIONS" \
        "$(column_of "$row" "$server" 10 | awk '{ s += $1 } END { print s + 0 }')"
    done
    echo "KiB/conn: growth of the server's VmRSS per idle TLS connection (median; lower is better);"
    echo "x_asio, x_go: its ratio to asio-tls's, go-tls's"
    return
  fi
  printf '%-16s %9s %7s %11s %7s %11s %7s %9s %9s %5s %8s %6s\n' server rate x_asio range x_go range \
    srv_us p50_us p99_us busy resumed errors
  local rate pairs_asio pairs_go cost p50 p99 busy resumed errors
  for server in "${SERVER_LIST[@]}"; do
    has_results "$row" "$server" || continue
    rate=$(column_of "$row" "$server" 4 | median)
    pairs_asio=$(paired_ratios "$row" "$server" asio-tls | sort -g)
    pairs_go=$(paired_ratios "$row" "$server" go-tls | sort -g)
    cost=$(column_of "$row" "$server" 14 | median)
    p50=$(column_of "$row" "$server" 6 | median)
    p99=$(column_of "$row" "$server" 7 | median)
    busy=$(busy_of "$row" "$server" | median)
    # The share of the measured handshakes that resumed a session (churn rows).
    resumed=$(awk -F'\t' -v r="$row" -v s="$server" 'NR > 1 && $2 == r && $3 == s { h += $17; k += $18 }
      END { if (h > 0) printf "%.0f%%", 100 * k / h; else print "-" }' "$RESULTS")
    errors=$(column_of "$row" "$server" 10 | awk '{ s += $1 } END { print s + 0 }')
    if [[ $SERVER_CPU == "$CLIENT_CPU" && -n $busy ]] && awk -v b="$busy" 'BEGIN { exit !(b < 0.9) }'; then
      shared=1
    fi
    printf '%-16s %9s %7s %11s %7s %11s %7s %9s %9s %4s%% %8s %6s\n' "$server" "$(fmt "$rate" %.0f)" \
      "$(fmt "$(median <<<"$pairs_asio")" %.2f)" \
      "$(range_of <<<"$pairs_asio")" \
      "$(fmt "$(median <<<"$pairs_go")" %.2f)" \
      "$(range_of <<<"$pairs_go")" \
      "$(fmt "$cost" %.2f)" "$(fmt "$p50" %.1f)" "$(fmt "$p99" %.1f)" \
      "$(awk -v b="$busy" 'BEGIN { if (b == "") print "-"; else printf "%.0f", b * 100 }')" "$resumed" "$errors"
  done
  echo "rate in $(awk -F'\t' -v r="$row" 'NR > 1 && $2 == r && $5 != "" { print $5; exit }' "$RESULTS")"
  tls_notes=1
}

print_table() {
  echo
  shared=0
  tls_notes=0
  for entry in "${ROWS[@]}"; do
    IFS='|' read -r row args mode title _row_servers <<<"$entry"
    selected "$row" || continue
    echo "## $title"
    if [[ $row == tls-* ]]; then
      print_tls_row "$row"
      echo
      continue
    fi
    if [[ $row == idle ]]; then
      printf '%-16s %9s %8s %12s %7s\n' server KiB/conn x_epoll established errors
    elif [[ $row == flood ]]; then
      printf '%-16s %11s %7s %8s %11s %11s %11s %5s %6s\n' server flood_rate x_epoll probes \
        probe_p50us probe_p99us probe_maxus busy errors
    else
      printf '%-16s %9s %7s %7s %11s %9s %7s %7s %7s %7s %7s %9s %9s %7s %5s %6s\n' server rate x_epoll paired range \
        rate/busy x_epoll srv_us x_epoll srv/cli cpu_x p50_us p99_us x_epoll busy errors
    fi
    base_rate=$(column_of "$row" epoll 4 | median)
    base_norm=$(column_of "$row" epoll 13 | median)
    base_p99=$(column_of "$row" epoll 7 | median)
    base_cost=$(column_of "$row" epoll 14 | median)
    base_rss=$(column_of "$row" epoll 11 | median)
    base_spc=$(server_per_client "$row" epoll | median)
    unit=""
    for server in "${SERVER_LIST[@]}"; do
      [[ -n $(awk -F'\t' -v r="$row" -v s="$server" 'NR > 1 && $2 == r && $3 == s' "$RESULTS") ]] || continue
      errors=$(column_of "$row" "$server" 10 | awk '{ s += $1 } END { print s + 0 }')
      if [[ $row == idle ]]; then
        rss=$(column_of "$row" "$server" 11 | median)
        est=$(column_of "$row" "$server" 12 | median)
        printf '%-16s %9s %8s %12s %7s\n' "$server" "$(fmt "$rss" %.2f)" "$(ratio "$rss" "$base_rss")" \
          "$(fmt "$est" %d)/$IDLE_CONNECTIONS" "$errors"
        continue
      fi
      if [[ $row == flood ]]; then
        # Medians over the rounds; max_us is each round's worst probe round trip.
        rate=$(column_of "$row" "$server" 4 | median)
        printf '%-16s %11s %7s %8s %11s %11s %11s %4s%% %6s\n' "$server" "$(fmt "$rate" %.0f)" \
          "$(ratio "$rate" "$base_rate")" "$(fmt "$(column_of "$row" "$server" 16 | median)" %.0f)" \
          "$(fmt "$(column_of "$row" "$server" 6 | median)" %.1f)" \
          "$(fmt "$(column_of "$row" "$server" 7 | median)" %.1f)" \
          "$(fmt "$(column_of "$row" "$server" 15 | median)" %.1f)" \
          "$(busy_of "$row" "$server" | median | awk '{ if ($1 == "") print "-"; else printf "%.0f", $1 * 100 }')" "$errors"
        continue
      fi
      rate=$(column_of "$row" "$server" 4 | median)
      norm=$(column_of "$row" "$server" 13 | median)
      cost=$(column_of "$row" "$server" 14 | median)
      p50=$(column_of "$row" "$server" 6 | median)
      p99=$(column_of "$row" "$server" 7 | median)
      busy=$(busy_of "$row" "$server" | median)
      spc=$(server_per_client "$row" "$server" | median)
      # The rate ratio that the CPU split implies: a request costs the pair client + server
      # = client x (1 + srv/cli), so with the client's cost the same against every server,
      # rate / rate_epoll = (1 + srv/cli of epoll) / (1 + srv/cli).
      cpu_x=$(awk -v a="$base_spc" -v b="$spc" 'BEGIN { if (a == "" || b == "") print "-"; else printf "%.3f", (1 + a) / (1 + b) }')
      unit=${unit:-$(column_of "$row" "$server" 5 | head -1)}
      if [[ $SERVER_CPU == "$CLIENT_CPU" && -n $busy ]] && awk -v b="$busy" 'BEGIN { exit !(b < 0.9) }'; then
        shared=1
      fi
      pairs=$(paired_ratios "$row" "$server" | sort -g)
      paired=$(median <<<"$pairs")
      range=$(awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf "%.2f-%.2f", lo, hi; else print "-" }' <<<"$pairs")
      printf '%-16s %9s %7s %7s %11s %9s %7s %7s %7s %7s %7s %9s %9s %7s %4s%% %6s\n' "$server" "$(fmt "$rate" %.0f)" \
        "$(ratio "$rate" "$base_rate")" "$(fmt "$paired" %.2f)" "$range" "$(fmt "$norm" %.0f)" "$(ratio "$norm" "$base_norm")" \
        "$(fmt "$cost" %.2f)" "$(ratio "$cost" "$base_cost")" "$(fmt "$spc" %.3f)" "$cpu_x" "$(fmt "$p50" %.1f)" "$(fmt "$p99" %.1f)" "$(ratio "$p99" "$base_p99")" \
        "$(awk -v b="$busy" 'BEGIN { if (b == "") print "-"; else printf "%.0f", b * 100 }')" "$errors"
    done
    if [[ $row == flood ]]; then
      echo "flood_rate: the flooding connection's lines/s; probes: the probe's round trips in the measured time"
      echo "probe_*us: the probe's round-trip percentiles (medians over the rounds); a probe still unanswered"
      echo "at the end counts with the time it had waited. A fair server keeps probe_maxus in milliseconds."
    elif [[ $row != idle ]]; then
      echo "rate in ${unit:-1/s}; srv_us: server CPU microseconds per ${unit%%/s}; x_epoll: ratio to raw epoll"
      echo "paired, range: median, lowest and highest over the rounds of the rate's ratio to raw epoll's in the same round"
      echo "srv/cli: server CPU over load generator CPU (median); cpu_x: the rate ratio to raw epoll it implies,"
      echo "(1 + srv/cli of epoll) / (1 + srv/cli), steady where rates are not (assumes the client's cost is the same)"
      echo "(rates: higher is better; srv_us and latencies: lower is better)"
    fi
    echo
  done
  if ((tls_notes)); then
    echo "TLS rows: x_asio, x_go, range: median, lowest and highest over the rounds of the rate's ratio"
    echo "to asio-tls's, go-tls's in the same round (higher is better); srv_us: server CPU microseconds"
    echo "per request or connection; resumed: share of the measured handshakes that resumed a session"
    echo
  fi
  if ((shared)); then
    echo "busy: the pair's share of CPU $SERVER_CPU (client + server). Below ~100% other processes took turns"
    echo "on that CPU: raw rates and latencies then suffer, rate/busy (per CPU-second the pair got) less so."
  fi
}
print_table | tee "$OUT/table.txt"
exit
}
