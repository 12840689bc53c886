#!/usr/bin/env bash
# The hostile-clients soak (issue 17): `rill echo --mode persistent` (one server per variant:
# no transcoder, and transcoded), each under a mix of good and hostile clients on loopback
# (bench/soak_clients.py) for a given time, while the server's RSS and descriptor count are
# sampled every second. Fails (exit 1) on any wrong or missing answer, a server that died or
# reported a sanitizer error, descriptors not given back, or RSS / descriptors that grow.
# Every process it starts runs under `timeout` and is stopped by its PID at the end, also on
# Ctrl-C. See bench/README.md ("Soak").
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

usage() {
    cat <<EOF
usage: bench/soak.sh [--duration D] [--variant SPEC]... [--server-arg ARG]... [--workers N]
                     [--backend io_uring|epoll] [--scale K] [--seed N] [--no-auto-flags]
                     [--rill PATH | --build-dir DIR [--no-build]] [--out DIR]
                     [-- ARGS FOR soak_clients.py]
  --duration D      how long the clients run: 600 (the default), 90s, 2m, 10m
  --variant SPEC    a server to soak: "plain" (no transcoder) or a --transcoder value
                    CODEC[,EOL[,ERRORS]]; repeatable; default: plain and utf_8,crlf,replace.
                    All variants run at once, each its own server and client process.
  --server-arg ARG  one more argument for every \`rill echo\` (repeatable)
  --no-auto-flags   do not add --reader-timeout 20s, --writer-timeout 5s, --max-connections
                    1000 (added only when \`rill --help\` lists them)
  --workers N       the server's workers (default 1: hostile and good clients share it)
  --scale K         multiplies the number of clients of every kind (default 1: 43 per server)
  --rill PATH       the rill to soak (default: BUILD_DIR/tools/rill, built if missing)
  --build-dir DIR   default build/release (configured with the release preset if missing)
  --out DIR         default build/soak-results/DATE
Arguments after -- go to every bench/soak_clients.py (e.g. --rss-tolerance-percent 5).
EOF
}

die() {
    echo "soak.sh: $*" >&2
    exit 2
}

seconds_of() {
    local d=$1
    case $d in
    *h) echo $((${d%h} * 3600)) ;;
    *min) echo $((${d%min} * 60)) ;;
    *m) echo $((${d%m} * 60)) ;;
    *s) echo "${d%s}" ;;
    *) echo "$d" ;;
    esac
}

duration=600
variants=()
server_args=()
client_args=()
workers=1
backend=""
scale=1
seed=1
auto_flags=1
rill=""
build_dir="$root/build/release"
no_build=0
out=""
while (($#)); do
    case $1 in
    --duration) duration=$(seconds_of "${2:?--duration needs a value}"); shift 2 ;;
    --variant) variants+=("${2:?--variant needs a value}"); shift 2 ;;
    --server-arg) server_args+=("${2?--server-arg needs a value}"); shift 2 ;;
    --workers) workers=${2:?}; shift 2 ;;
    --backend) backend=${2:?}; shift 2 ;;
    --scale) scale=${2:?}; shift 2 ;;
    --seed) seed=${2:?}; shift 2 ;;
    --no-auto-flags) auto_flags=0; shift ;;
    --rill) rill=${2:?}; shift 2 ;;
    --build-dir) build_dir=${2:?}; shift 2 ;;
    --no-build) no_build=1; shift ;;
    --out) out=${2:?}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; client_args=("$@"); break ;;
    *) usage >&2; die "unknown argument $1" ;;
    esac
done
[[ $duration =~ ^[0-9]+$ && $duration -gt 0 ]] || die "--duration must be whole seconds (or 90s, 2m), got $duration"
((${#variants[@]})) || variants=(plain utf_8,crlf,replace)
command -v python3 >/dev/null || die "python3 not found"

if [[ -z $rill ]]; then
    rill=$build_dir/tools/rill
    if [[ ! -x $rill && $no_build == 0 ]]; then
        if [[ ! -f $build_dir/CMakeCache.txt ]]; then
            [[ $build_dir == "$root/build/release" ]] || die "$build_dir is not configured"
            (cd "$root" && cmake --preset release >/dev/null)
        fi
        echo "soak.sh: building $rill" >&2
        timeout 1800 cmake --build "$build_dir" --target rill_tool -j"$(nproc)" >/dev/null
    fi
fi
[[ -x $rill ]] || die "no rill at $rill (build it, or give --rill PATH)"
rill=$(readlink -f "$rill")
out=${out:-$root/build/soak-results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"

# The issue-17 flags, when this build has them (`rill --help` lists them).
help_text=$({ "$rill" --help; "$rill" echo --help; } 2>&1 || true)
auto=()
if ((auto_flags)); then
    grep -q -- '--reader-timeout' <<<"$help_text" && auto+=(--reader-timeout 20s)
    grep -q -- '--writer-timeout' <<<"$help_text" && auto+=(--writer-timeout 5s)
    grep -q -- '--max-connections' <<<"$help_text" && auto+=(--max-connections 1000)
fi

# Every process started here: `timeout` wrappers (our children) and the servers under them.
timeouts=()
servers=()
clients=()

is_our_rill() { [[ -n ${1:-} && $(readlink "/proc/$1/exe" 2>/dev/null) == "$rill" ]]; }

# Ends the PIDs given (TERM, then KILL after 5 s), each only while it is still ours.
stop_pids() {
    local pid left
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 50); do
        left=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && left=1; done
        ((left)) || return 0
        sleep 0.1
    done
    for pid in "$@"; do kill -KILL "$pid" 2>/dev/null || true; done
}

cleanup() {
    local s live=()
    for s in "${servers[@]}"; do is_our_rill "$s" && live+=("$s"); done
    stop_pids "${clients[@]}" "${live[@]}" "${timeouts[@]}"
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'echo "soak.sh: interrupted" >&2; exit 130' INT TERM

echo "soak.sh: $rill, ${duration} s, variants: ${variants[*]}, workers $workers" \
    "${backend:+backend $backend, }flags: ${auto[*]:-none} ${server_args[*]:-}; results in $out"

addresses=()
for i in "${!variants[@]}"; do
    v=${variants[$i]}
    args=(echo 127.0.0.1:0 --mode persistent --workers "$workers")
    [[ $v == plain ]] || args+=(--transcoder "$v")
    args+=("${auto[@]}" "${server_args[@]}")
    envs=()
    [[ -n $backend ]] && envs=("RILL_BACKEND=$backend")
    env "${envs[@]}" timeout -k 5 $((duration + 120)) "$rill" "${args[@]}" \
        >"$out/server-$i.out" 2>"$out/server-$i.err" &
    timeouts+=($!)
    addr=""
    for _ in $(seq 100); do
        addr=$(head -n 1 "$out/server-$i.out" 2>/dev/null || true)
        [[ -n $addr ]] && break
        sleep 0.1
    done
    [[ -n $addr ]] || die "rill ${args[*]} printed no address: $(head -c 500 "$out/server-$i.err")"
    pid=$(pgrep -P "${timeouts[$i]}" | head -n 1 || true)
    is_our_rill "$pid" || die "cannot find the server's PID under timeout ${timeouts[$i]}"
    servers+=("$pid")
    addresses+=("$addr")
    echo "soak.sh: [$i] $v: rill ${args[*]} -> $addr (pid $pid)"
done

for i in "${!variants[@]}"; do
    timeout -k 5 $((duration + 90)) python3 "$here/soak_clients.py" --address "${addresses[$i]}" \
        --server-pid "${servers[$i]}" --variant "${variants[$i]}" --duration "$duration" \
        --seed $((seed + i)) --scale "$scale" --report "$out/report-$i.json" "${client_args[@]}" \
        >"$out/clients-$i.log" 2>"$out/clients-$i.err" &
    clients+=($!)
done

failed=0
for i in "${!variants[@]}"; do
    rc=0
    wait "${clients[$i]}" || rc=$?
    cat "$out/clients-$i.log"
    if ((rc)); then
        failed=1
        echo "  clients exited with status $rc ($(grep -c FAILURE "$out/clients-$i.err" || true) failures; $out/clients-$i.err)"
    fi
done
clients=()

for i in "${!variants[@]}"; do
    pid=${servers[$i]} err=$out/server-$i.err
    if is_our_rill "$pid"; then
        stop_pids "$pid"
        wait "${timeouts[$i]}" 2>/dev/null || true
    else
        rc=0
        wait "${timeouts[$i]}" || rc=$?
        echo "== [$i] ${variants[$i]}: the server ENDED during the soak (status $rc)"
        failed=1
    fi
    lines=$(wc -l <"$err")
    echo "== [$i] ${variants[$i]}: server stderr: $lines lines; most frequent (numbers and addresses elided):"
    sed -E 's/[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+:[0-9]+/ADDR/g; s/[0-9]+/N/g' "$err" | sort | uniq -c |
        sort -rn | head -n 8 | sed 's/^/    /'
    if grep -qE 'Sanitizer|runtime error:|terminate called|Segmentation fault|Aborted' "$err"; then
        echo "  the server's stderr has a crash or sanitizer report: $err"
        failed=1
    fi
done
servers=()
timeouts=()

if ((failed)); then
    echo "soak.sh: FAIL (results in $out)"
    exit 1
fi
echo "soak.sh: PASS (results in $out)"
