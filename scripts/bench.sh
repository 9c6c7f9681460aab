#!/usr/bin/env bash
# make bench: Go microbenchmarks of the hot paths and SIPp load against the
# real server, all on loopback. Writes docs/bench/*.txt and prints a summary
# that docs/benchmarks.md quotes. Every load is bounded in count and time.
#
#   REG_RATE    REGISTER rate to offer (default 10000/s)
#   REG_SECS    how long to offer it (default 20 s)
#   CPS         call setup rate to offer (default 1000/s)
#   CPS_SECS    how long (default 15 s)
#   BINDINGS    registrations for the memory-per-binding figure (default 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
REG_RATE=${REG_RATE:-10000}
REG_SECS=${REG_SECS:-20}
CPS=${CPS:-1000}
CPS_SECS=${CPS_SECS:-15}
BINDINGS=${BINDINGS:-100000}
out=docs/bench
mkdir -p "$out"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
bin=bin/switchboard

echo "== machine"
{ nproc; grep -m1 'model name' /proc/cpuinfo || true; go version; sipp -v 2>&1 | head -1 || true; } | tee "$out/machine.txt"

echo "== Go microbenchmarks (go test -bench, -benchmem, -count 5)"
go test -run '^$' -bench . -benchmem -count 5 ./internal/digest ./internal/store ./media ./sip 2>&1 | tee "$out/go.txt" | grep -E '^(Benchmark|ok|FAIL)' || true

# users N FILE.yaml FILE.csv: a config with N users and the SIPp injection file.
users() {
	local n=$1 cfg=$2 csv=$3 port=$4 dir=$5
	{
		printf 'sip:\n  listen: "127.0.0.1:%s"\n' "$port"
		printf 'media: {port_min: 40000, port_max: 59999}\n'
		printf 'web: {listen: "127.0.0.1:%s", api_tokens: ["bench-token"]}\n' $((port + 1))
		printf 'storage: {path: "%s/sb.db"}\ncontrol: {socket: "%s/sb.sock"}\n' "$dir" "$dir"
		printf 'log: {level: warn}\ndebug: {listen: "127.0.0.1:%s"}\nusers:\n' $((port + 2))
		awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) printf "  - {name: \"u%d\", password: \"pass%d\"}\n", i, i }'
	} >"$cfg"
	awk -v n="$n" 'BEGIN { print "SEQUENTIAL"; for (i = 0; i < n; i++) printf "u%d;[authentication username=u%d password=pass%d]\n", i, i, i }' >"$csv"
}

wait_up() { # port
	for _ in $(seq 100); do
		curl -sf "http://127.0.0.1:$(($1 + 2))/debug/pprof/" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	echo "server did not start" >&2
	return 1
}

heap_inuse() { # port
	curl -s "http://127.0.0.1:$(($1 + 2))/debug/pprof/heap?debug=1&gc=1" | awk '/^# HeapInuse/ { print $4 }'
}

# sipp_summary FILE: successful, failed and elapsed seconds of a SIPp run.
sipp_summary() {
	awk '/Successful call/ { ok = $NF } /Failed call/ { bad = $NF } END { printf "%s %s\n", ok, bad }' "$1"
}

make build >/dev/null
port=25060

echo "== SIPp REGISTER with digest auth: ${REG_RATE}/s offered for ${REG_SECS}s"
users 20000 "$work/reg.yaml" "$work/reg.csv" $port "$work/reg"
$bin serve --config "$work/reg.yaml" 2>"$work/reg.log" &
srv=$!
wait_up $port
total=$((REG_RATE * REG_SECS))
start=$(date +%s.%N)
sipp 127.0.0.1:$port -sf sipp/register_auth.xml -inf "$work/reg.csv" -m $total -r "$REG_RATE" -l $((REG_RATE * 2)) \
	-i 127.0.0.1 -p $((port + 10)) -nostdin -timeout $((REG_SECS + 30))s -timeout_error >"$work/reg-sipp.txt" 2>&1 || true
end=$(date +%s.%N)
cpu=$(ps -o times= -p $srv)
read -r ok bad < <(sipp_summary "$work/reg-sipp.txt")
kill $srv; wait $srv || true
secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
printf 'register: offered=%s/s ok=%s failed=%s wall=%.1fs achieved=%.0f/s server_cpu_s=%s\n' \
	"$REG_RATE" "$ok" "$bad" "$secs" "$(awk -v a="$ok" -v b="$secs" 'BEGIN { print a / b }')" "$cpu" | tee "$out/register.txt"

echo "== memory per binding: ${BINDINGS} registrations"
users "$BINDINGS" "$work/mem.yaml" "$work/mem.csv" $port "$work/mem"
$bin serve --config "$work/mem.yaml" 2>"$work/mem.log" &
srv=$!
wait_up $port
before=$(heap_inuse $port)
sipp 127.0.0.1:$port -sf sipp/register_auth.xml -inf "$work/mem.csv" -m "$BINDINGS" -r 3000 -l 6000 \
	-i 127.0.0.1 -p $((port + 10)) -nostdin -timeout 120s -timeout_error >"$work/mem-sipp.txt" 2>&1 || true
read -r ok bad < <(sipp_summary "$work/mem-sipp.txt")
sleep 35 # let SIP transactions finish (64*T1) so only bindings remain
after=$(heap_inuse $port)
kill $srv; wait $srv || true
printf 'memory: bindings=%s failed=%s heap_before=%s heap_after=%s bytes_per_binding=%.0f\n' \
	"$ok" "$bad" "$before" "$after" "$(awk -v a="$after" -v b="$before" -v n="$ok" 'BEGIN { print (a - b) / n }')" | tee "$out/memory.txt"

echo "== SIPp call setup (INVITE/407/INVITE/200/ACK/BYE, relay ports allocated): ${CPS}/s for ${CPS_SECS}s"
users 2 "$work/cps.yaml" "$work/cps.csv" $port "$work/cps"
$bin serve --config "$work/cps.yaml" 2>"$work/cps.log" &
srv=$!
wait_up $port
printf 'SEQUENTIAL\nu1;[authentication username=u1 password=pass1]\n' >"$work/uas.csv"
printf 'SEQUENTIAL\nu0;[authentication username=u0 password=pass0]\n' >"$work/uac.csv"
sipp 127.0.0.1:$port -sf sipp/register_auth.xml -inf "$work/uas.csv" -m 1 -i 127.0.0.1 -p $((port + 20)) -nostdin >/dev/null 2>&1
sipp -sn uas -i 127.0.0.1 -p $((port + 20)) -mi 127.0.0.1 -mp 36000 -nostdin -bg >/dev/null 2>&1
total=$((CPS * CPS_SECS))
start=$(date +%s.%N)
sipp 127.0.0.1:$port -sf sipp/uac_setup.xml -inf "$work/uac.csv" -s u1 -m $total -r "$CPS" -l $((CPS * 5)) -d 100 \
	-i 127.0.0.1 -p $((port + 30)) -mi 127.0.0.1 -mp 36100 -nostdin -timeout $((CPS_SECS + 40))s -timeout_error >"$work/cps-sipp.txt" 2>&1 || true
end=$(date +%s.%N)
cpu=$(ps -o times= -p $srv)
read -r ok bad < <(sipp_summary "$work/cps-sipp.txt")
pkill -f "sipp -sn uas -i 127.0.0.1 -p $((port + 20))" || true
kill $srv; wait $srv || true
secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
printf 'calls: offered=%s/s ok=%s failed=%s wall=%.1fs achieved=%.0f/s server_cpu_s=%s\n' \
	"$CPS" "$ok" "$bad" "$secs" "$(awk -v a="$ok" -v b="$secs" 'BEGIN { print a / b }')" "$cpu" | tee "$out/calls.txt"

echo "== relay capacity: rtpload sweep (docs/bench/relay-load.txt)"
# rtpload runs the media relay in a child process and drives it with calls on
# 127.0.0.1: two phones per call, 50 packets/s of 172-byte PCMU RTP each way.
# Each run is bounded by its call count and RELAY_SECS (plus a 2 s warm-up).
#   RELAY_CALLS  call counts to sweep (default 100,250,500,1000,2000)
#   RELAY_SECS   measured seconds per run (default 10)
RELAY_CALLS=${RELAY_CALLS:-100,250,500,1000,2000}
RELAY_SECS=${RELAY_SECS:-10}
CGO_ENABLED=0 go build -trimpath -o bin/rtpload ./cmd/rtpload
udp_errors() { netstat -su 2>/dev/null | awk '/receive buffer errors/ { print $1 }'; }
rcvbuf_before=$(udp_errors)
{
	printf '# rtpload sweep --calls %s --duration %ss, %s, %s CPUs, load average before: %s\n' \
		"$RELAY_CALLS" "$RELAY_SECS" "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
	bin/rtpload sweep --calls "$RELAY_CALLS" --duration "${RELAY_SECS}s"
	printf 'netstat -su receive buffer errors: before %s, after %s\n' "${rcvbuf_before:-?}" "$(udp_errors)"
} | tee "$out/relay-load.txt"

echo "== done: figures in $out/"
