#!/usr/bin/env bash
# make bench: Switchboard measured side by side with Kamailio (registrar and
# stateful proxy, bench/kamailio/kamailio.cfg) and rtpengine (userspace media
# relay), in the same run, on loopback. The REGISTER comparison runs Kamailio
# twice: keeping bindings in memory only ("kamailio", usrloc db_mode 0) and
# writing each one through to SQLite before its 200 OK ("kamailio-db",
# usrloc db_mode 1), the durable job Switchboard does. Every comparison is repeated REPS
# times with the two systems interleaved; cmd/benchchart takes the medians and
# the per-repetition ratios and writes docs/benchmarks.md and
# docs/bench/chart.svg. Raw figures go to docs/bench/.
#
#   REPS         repetitions of each side-by-side comparison (default 3)
#   REG_RATES    REGISTER rates offered, per second (default "1000 2500 5000 10000")
#   REG_SECS     seconds each rate is offered (default 3)
#   CPS_RATES    call setup rates offered (default "250 500 1000")
#   CPS_SECS     seconds each rate is offered (default 3)
#   BIND_STEPS   registration counts for the memory curve (default "1000 10000 100000")
#   BIND_RATE    REGISTER rate while filling the registrar (default 4000)
#   BIND_WAIT    seconds after a step before reading memory (default 34: the
#                answers kept for retransmitted REGISTERs, sip/stateless.go,
#                and any SIP transaction live at most 64*T1 = 32 s)
#   RELAY_CALLS  concurrent calls swept through each relay (default "100,500,1000,2000")
#   RELAY_SECS   measured seconds per relay run (default 2)
#   GO_COUNT     repetitions of each Go microbenchmark (default 5)
#   GO_TIME      -benchtime of each Go microbenchmark (default 100ms)
#   SKIP         space-separated steps to skip: go register bindings calls relay
#
# Every load is bounded in count and time and stays on 127.0.0.1. Databases
# and scratch files live in /dev/shm when it is there, so that neither
# server's figures depend on the disk: Switchboard's store commits without
# an fsync (WAL, synchronous=NORMAL) while Kamailio's db_sqlite keeps
# SQLite's default (synchronous=FULL, an fsync per commit), and on tmpfs an
# fsync costs nothing. Both survive a killed process either way.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-3}
REG_RATES=${REG_RATES:-"1000 2500 5000 10000"}
REG_SECS=${REG_SECS:-3}
REG_USERS=${REG_USERS:-20000}
CPS_RATES=${CPS_RATES:-"250 500 1000"}
CPS_SECS=${CPS_SECS:-3}
BIND_STEPS=${BIND_STEPS:-"1000 10000 100000"}
BIND_WAIT=${BIND_WAIT:-34}
BIND_RATE=${BIND_RATE:-4000}
RELAY_CALLS=${RELAY_CALLS:-"100,500,1000,2000"}
RELAY_SECS=${RELAY_SECS:-2}
GO_COUNT=${GO_COUNT:-5}
GO_TIME=${GO_TIME:-100ms}
SKIP=${SKIP:-}

out=docs/bench
mkdir -p "$out"
if [ -d /dev/shm ] && [ -w /dev/shm ]; then work=$(mktemp -d -p /dev/shm); else work=$(mktemp -d); fi
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
bin=bin/switchboard
results=$out/results.tsv
commands=$out/commands.tsv
tck=$(getconf CLK_TCK)
port=25060 # Switchboard SIP; +1 web, +2 pprof, +20 the callee's SIPp
kport=26060 # Kamailio SIP
# free_from BASE OFFSETS...: the first of BASE, BASE+100, ... whose ports
# BASE+OFFSET are all free (UDP and TCP): other programs on a shared machine
# may hold the defaults.
free_from() {
	local b=$1 o busy
	shift
	for _ in $(seq 50); do
		busy=
		for o in "$@"; do
			ss -Hlntu "( sport = :$((b + o)) )" 2>/dev/null | grep -q . && busy=1
		done
		[ -z "$busy" ] && { echo "$b"; return; }
		b=$((b + 100))
	done
	echo "$1"
}
port=$(free_from "$port" 0 1 2 20)
kport=$(free_from "$kport" 0)

skip() { [[ " $SKIP " == *" $1 "* ]]; }
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$results"; } # test system param rep metric value
command_of() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$commands"; } # test system command
secs_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }'; }
# section NAME: prints how long the previous section took and starts NAME.
section_t0=$(date +%s)
section_name=setup
section() {
	echo "  ($section_name took $(($(date +%s) - section_t0)) s)"
	section_name=$1
	section_t0=$(date +%s)
}

# tree PID: PID and its descendants (Kamailio runs as a process tree).
tree() {
	local p=$1
	echo "$p"
	for c in $(pgrep -P "$p" || true); do tree "$c"; done
}
# cpu_s PID: CPU seconds (user + system) used so far by PID's process tree.
cpu_s() {
	local t=0
	for p in $(tree "$1"); do
		t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
	done
	awk -v t="$t" -v h="$tck" 'BEGIN { printf "%.2f", t / h }'
}
# pss_kib PID: proportional set size of PID's process tree (shared memory
# counted once, which matters for Kamailio's shared memory segment).
pss_kib() {
	local t=0
	for p in $(tree "$1"); do
		t=$((t + $(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)))
	done
	echo "$t"
}
# sipp_counts FILE: successful and failed calls of a finished SIPp run.
sipp_counts() {
	awk '/Successful call/ { ok = $NF } /Failed call/ { bad = $NF } END { printf "%d %d\n", ok, bad }' "$1"
}
# sipp_run OUT ARGS...: runs SIPp with ARGS, its output in OUT. A run that
# made no call at all (SIPp could not start, for instance because a socket it
# wanted was taken) is shown and tried once more.
sipp_run() {
	local out=$1 ok bad
	shift
	for try in 1 2; do
		sipp "$@" >"$out" 2>&1 || true
		read -r ok bad < <(sipp_counts "$out")
		[ $((ok + bad)) -gt 0 ] && return 0
		echo "  sipp made no call (try $try):" >&2
		grep -v '^\s*$' "$out" | tail -n 3 >&2 || true
		sleep 1
	done
}

{
	echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
	echo "cpus: $(nproc)"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
	echo "kernel: $(uname -r)"
	echo "go: $(go version | cut -d' ' -f3)"
	echo "sipp: $(sipp -v 2>&1 | grep -o 'v[0-9][^ ]*' | head -1)"
	echo "kamailio: $(kamailio -v 2>/dev/null | head -1 | awk '{ print $3 }')"
	echo "rtpengine: $(dpkg-query -W -f '${Version}' rtpengine-daemon 2>/dev/null || echo '?')"
	echo "load_before: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "reps: $REPS"
} >"$out/machine.txt"
cat "$out/machine.txt"
: >"$results"
: >"$commands"

make build >/dev/null
CGO_ENABLED=0 go build -trimpath -o bin/rtpload ./cmd/rtpload
CGO_ENABLED=0 go build -trimpath -o bin/benchchart ./cmd/benchchart

if ! skip go; then
	section go
	echo "== Go microbenchmarks (-benchmem, -count $GO_COUNT; compare runs with benchstat)"
	# The hot paths: digest verification, REGISTER handling end to end, SDP
	# rewrite, the relay per packet and the WebRTC bridge per packet.
	gobench="go test -run '^\$' -bench 'Verify|Register\$|RewriteSDP|RelayForward|LegHandleRTP|Bridge' -benchmem -benchtime $GO_TIME -count $GO_COUNT ./internal/digest ./sip ./media"
	command_of go switchboard "$gobench"
	eval "$gobench" 2>&1 | tee "$out/go.txt" | grep -E '^(Benchmark|ok|FAIL)' || true
fi

# switchboard_config N DIR: a config for N users u0…u(N-1) with password
# pass0…, and the Kamailio user table for the same users (htable: name, HA1).
switchboard_config() {
	local n=$1 dir=$2
	mkdir -p "$dir/kdb"
	{
		printf 'sip:\n  listen: "127.0.0.1:%s"\n' "$port"
		printf 'media: {port_min: 40000, port_max: 59999}\n'
		printf 'web: {listen: "127.0.0.1:%s", api_tokens: ["bench-token"]}\n' $((port + 1))
		printf 'storage: {path: "%s/sb.db"}\ncontrol: {socket: "%s/sb.sock"}\n' "$dir" "$dir"
		printf 'log: {level: warn}\ndebug: {listen: "127.0.0.1:%s"}\nusers:\n' $((port + 2))
		awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) printf "  - {name: \"u%d\", password: \"pass%d\"}\n", i, i }'
	} >"$dir/sb.yaml"
	printf 'table_name(str) table_version(int)\nhtable:2\n' >"$dir/kdb/version"
	bin/benchchart users --n "$n" --out "$dir/kdb/htable"
}

# users_csv FIRST N FILE: a SIPp injection file for users FIRST…FIRST+N-1.
users_csv() {
	awk -v a="$1" -v n="$2" 'BEGIN { print "SEQUENTIAL"; for (i = a; i < a + n; i++) printf "u%d;[authentication username=u%d password=pass%d]\n", i, i, i }' >"$3"
}

# start SYSTEM DIR: starts Switchboard or Kamailio on its port, waits until
# it is ready and sets srv (PID) and sport (SIP port). A server that does not
# come up is tried once more, then the run stops with its log.
start() {
	local try
	for try in 1 2; do
		start_once "$@" && return 0
		echo "  $1 did not start (try $try):" >&2
		tail -n 5 "$2"/*.log >&2 || true
		stop
		sleep 2
	done
	exit 1
}
start_once() {
	local sys=$1 dir=$2 up=1
	case $sys in
	switchboard)
		rm -f "$dir/sb.db"*
		$bin serve --config "$dir/sb.yaml" 2>"$dir/sb.log" &
		srv=$!
		sport=$port
		for _ in $(seq 300); do
			curl -sf "http://127.0.0.1:$((port + 1))/readyz" >/dev/null 2>&1 && { up=0; break; }
			kill -0 "$srv" 2>/dev/null || break
			sleep 0.2
		done
		;;
	kamailio | kamailio-db)
		local uldb=()
		if [ "$sys" = kamailio-db ]; then
			# Kamailio's own location schema, in WAL mode like Switchboard's store.
			rm -f "$dir/kam.sqlite"*
			cat /usr/share/kamailio/db_sqlite/standard-create.sql /usr/share/kamailio/db_sqlite/usrloc-create.sql |
				sqlite3 "$dir/kam.sqlite"
			sqlite3 "$dir/kam.sqlite" 'PRAGMA journal_mode=WAL;' >/dev/null
			uldb=(-A "ULDB=\"sqlite://$dir/kam.sqlite\"")
		fi
		kamailio -f bench/kamailio/kamailio.cfg -DD -E -m 1024 -M 32 -l "udp:127.0.0.1:$kport" \
			-A "DBURL=\"text://$dir/kdb\"" -A "CTLSOCK=\"unix:$dir/kam.ctl\"" "${uldb[@]}" >"$dir/kam.log" 2>&1 &
		srv=$!
		sport=$kport
		for _ in $(seq 300); do
			kamcmd -s "unix:$dir/kam.ctl" core.version >/dev/null 2>&1 && { up=0; break; }
			kill -0 "$srv" 2>/dev/null || break
			sleep 0.2
		done
		;;
	esac
	pids+=("$srv")
	sleep 0.5
	return $up
}
stop() {
	kill "$srv" 2>/dev/null || true
	wait "$srv" 2>/dev/null || true
}
kamailio_cmd() { echo "kamailio -f bench/kamailio/kamailio.cfg -DD -E -m 1024 -M 32 -l udp:127.0.0.1:$kport -A 'DBURL=\"text://DIR/kdb\"'"; }
kamailio_db_cmd() { echo "$(kamailio_cmd) -A 'ULDB=\"sqlite://DIR/kam.sqlite\"' (usrloc db_mode 1: every binding written to SQLite, WAL, before the 200 OK; 1 worker process)"; }

if ! skip register; then
	section register
	echo "== REGISTER with digest auth: rates ${REG_RATES}/s, ${REG_SECS}s each, $REG_USERS users, $REPS reps"
	dir=$work/reg
	switchboard_config "$REG_USERS" "$dir"
	users_csv 0 "$REG_USERS" "$dir/users.csv"
	regcmd="sipp 127.0.0.1:PORT -sf sipp/register_auth.xml -inf users.csv -r RATE -m RATE*$REG_SECS -l 2*RATE -recv_timeout 5000 -i 127.0.0.1 -nostdin"
	command_of register switchboard "bin/switchboard serve --config sb.yaml ($REG_USERS users); $regcmd"
	command_of register kamailio "$(kamailio_cmd); $regcmd"
	command_of register kamailio-db "$(kamailio_db_cmd); $regcmd"
	for rep in $(seq "$REPS"); do
		for sys in switchboard kamailio kamailio-db; do
			start $sys "$dir"
			for rate in $REG_RATES; do
				c0=$(cpu_s "$srv")
				t0=$(date +%s.%N)
				sipp_run "$dir/sipp.txt" 127.0.0.1:$sport -sf sipp/register_auth.xml -inf "$dir/users.csv" -r "$rate" -m $((rate * REG_SECS)) \
					-l $((rate * 2)) -recv_timeout 5000 -timeout $((REG_SECS + 20))s -i 127.0.0.1 \
					-nostdin
				wall=$(secs_since "$t0")
				c1=$(cpu_s "$srv")
				read -r ok bad < <(sipp_counts "$dir/sipp.txt")
				cpu=$(awk -v a="$c0" -v b="$c1" 'BEGIN { print b - a }')
				record register $sys "$rate" "$rep" ok "$ok"
				record register $sys "$rate" "$rep" failed "$bad"
				record register $sys "$rate" "$rep" wall_s "$wall"
				record register $sys "$rate" "$rep" cpu_s "$cpu"
				record register $sys "$rate" "$rep" pss_kib "$(pss_kib "$srv")"
				printf '  rep %d %-11s offered %5d/s: ok %6d failed %4d in %5.1fs = %6.0f/s, server CPU %5.2fs (%.0f us/REGISTER)\n' \
					"$rep" $sys "$rate" "$ok" "$bad" "$wall" "$(awk -v a="$ok" -v w="$wall" 'BEGIN { print a / w }')" "$cpu" \
					"$(awk -v c="$cpu" -v n="$ok" 'BEGIN { print n ? 1e6 * c / n : 0 }')"
				sleep 1
			done
			stop
		done
	done
fi

if ! skip bindings; then
	section bindings
	last=${BIND_STEPS##* }
	echo "== memory per binding: ${BIND_STEPS// /, } registrations"
	dir=$work/bind
	switchboard_config "$last" "$dir"
	command_of bindings switchboard "bin/switchboard serve --config sb.yaml ($last users); sipp -sf sipp/register_auth.xml -inf users-STEP.csv -r $BIND_RATE (each step); HeapInuse from /debug/pprof/heap?gc=1 after ${BIND_WAIT}s; PSS from /proc/PID/smaps_rollup"
	command_of bindings kamailio "$(kamailio_cmd); the same sipp runs; shared memory real_used from kamcmd core.shmmem; PSS of the process tree"
	heap() { curl -s "http://127.0.0.1:$((port + 2))/debug/pprof/heap?debug=1&gc=1" | awk '/^# HeapInuse/ { print $4 }'; }
	shm() { kamcmd -s "unix:$dir/kam.ctl" core.shmmem | awk '/real_used:/ { print $2 }'; }
	# Both servers run side by side; each step's SIPp load goes to one at a
	# time. Kamailio's step runs while Switchboard waits BIND_WAIT after its
	# own (an idle server: its heap, read after a GC, does not depend on the
	# CPU Kamailio's load takes).
	declare -A bpid bport bbase bpss0 bdone bheld bbad
	start switchboard "$dir"
	bpid[switchboard]=$srv bport[switchboard]=$sport
	heap >/dev/null # a GC, then time for the runtime to return start-up garbage
	start kamailio "$dir"
	bpid[kamailio]=$srv bport[kamailio]=$sport
	bbase[kamailio]=$(shm)
	sleep 4
	bbase[switchboard]=$(heap)
	for sys in switchboard kamailio; do
		bpss0[$sys]=$(pss_kib "${bpid[$sys]}") bdone[$sys]=0 bheld[$sys]=0
	done
	# bind_run SYS N: registers users bdone..N-1 with SYS.
	bind_run() {
		local sys=$1 n=$2 ok bad
		users_csv "${bdone[$sys]}" $((n - bdone[$sys])) "$dir/step-$sys.csv"
		sipp_run "$dir/sipp-$sys.txt" 127.0.0.1:${bport[$sys]} -sf sipp/register_auth.xml -inf "$dir/step-$sys.csv" -r "$BIND_RATE" \
			-m $((n - bdone[$sys])) -l $((BIND_RATE * 2)) -recv_timeout 5000 -timeout 120s -i 127.0.0.1 -nostdin
		read -r ok bad < <(sipp_counts "$dir/sipp-$sys.txt")
		bdone[$sys]=$n
		bheld[$sys]=$((bheld[$sys] + ok)) # failed ones hold no binding
		bbad[$sys]=$bad
	}
	# bind_read SYS N: records SYS's memory after the step of N.
	bind_read() {
		local sys=$1 n=$2 mem pss
		if [ "$sys" = switchboard ]; then mem=$(heap); else mem=$(shm); fi
		mem=$((mem - bbase[$sys]))
		pss=$(($(pss_kib "${bpid[$sys]}") - bpss0[$sys]))
		record bindings "$sys" "$n" 1 failed "${bbad[$sys]}"
		record bindings "$sys" "$n" 1 held "${bheld[$sys]}"
		record bindings "$sys" "$n" 1 mem_bytes "$mem"
		record bindings "$sys" "$n" 1 pss_kib "$pss"
		printf '  %-11s %6d bindings held (%d failed): %s +%d B = %.0f B/binding, PSS +%d KiB\n' "$sys" "${bheld[$sys]}" "${bbad[$sys]}" \
			"$([ "$sys" = switchboard ] && echo heap || echo shm)" "$mem" "$(awk -v m="$mem" -v n="${bheld[$sys]}" 'BEGIN { print n ? m / n : 0 }')" "$pss"
	}
	for n in $BIND_STEPS; do
		bind_run switchboard "$n"
		t0=$(date +%s)
		bind_run kamailio "$n"
		sleep 2
		bind_read kamailio "$n"
		left=$((BIND_WAIT - ($(date +%s) - t0)))
		[ "$left" -gt 0 ] && sleep "$left"
		bind_read switchboard "$n"
	done
	for sys in kamailio switchboard; do
		srv=${bpid[$sys]}
		stop
	done
fi

if ! skip calls; then
	section calls
	echo "== call setup (INVITE/407/INVITE/200/ACK/BYE): rates ${CPS_RATES}/s, ${CPS_SECS}s each, $REPS reps"
	dir=$work/cps
	switchboard_config 2 "$dir"
	users_csv 1 1 "$dir/uas.csv"
	users_csv 0 1 "$dir/uac.csv"
	cpscmd="sipp 127.0.0.1:PORT -sf sipp/uac_setup.xml -inf uac.csv -s u1 -r RATE -m RATE*$CPS_SECS -l 5*RATE -d 100 -recv_timeout 5000; callee: sipp -sf sipp/uas_answer.xml, registered as u1"
	command_of calls switchboard "bin/switchboard serve --config sb.yaml (B2BUA, relay ports allocated per call); $cpscmd"
	command_of calls kamailio "$(kamailio_cmd) (stateful proxy, record-route); $cpscmd"
	for rep in $(seq "$REPS"); do
		for sys in switchboard kamailio; do
			start $sys "$dir"
			sipp 127.0.0.1:$sport -sf sipp/register_auth.xml -inf "$dir/uas.csv" -m 1 -i 127.0.0.1 -p $((port + 20)) \
				-nostdin -timeout 10s >/dev/null 2>&1 || true
			sipp -sf sipp/uas_answer.xml -i 127.0.0.1 -p $((port + 20)) -mi 127.0.0.1 -mp 36000 -nostdin \
				-timeout $((CPS_SECS * 4 + 60))s >"$dir/uas.txt" 2>&1 &
			uas=$!
			pids+=("$uas")
			sleep 0.3
			for rate in $CPS_RATES; do
				c0=$(cpu_s "$srv")
				t0=$(date +%s.%N)
				sipp_run "$dir/sipp.txt" 127.0.0.1:$sport -sf sipp/uac_setup.xml -inf "$dir/uac.csv" -s u1 -r "$rate" -m $((rate * CPS_SECS)) \
					-l $((rate * 5)) -d 100 -recv_timeout 5000 -timeout $((CPS_SECS + 20))s -i 127.0.0.1 \
					-mi 127.0.0.1 -mp 36100 -nostdin
				wall=$(secs_since "$t0")
				c1=$(cpu_s "$srv")
				read -r ok bad < <(sipp_counts "$dir/sipp.txt")
				cpu=$(awk -v a="$c0" -v b="$c1" 'BEGIN { print b - a }')
				record calls $sys "$rate" "$rep" ok "$ok"
				record calls $sys "$rate" "$rep" failed "$bad"
				record calls $sys "$rate" "$rep" wall_s "$wall"
				record calls $sys "$rate" "$rep" cpu_s "$cpu"
				record calls $sys "$rate" "$rep" pss_kib "$(pss_kib "$srv")"
				printf '  rep %d %-11s offered %5d/s: ok %6d failed %4d in %5.1fs = %6.0f/s, server CPU %5.2fs (%.0f us/call)\n' \
					"$rep" $sys "$rate" "$ok" "$bad" "$wall" "$(awk -v a="$ok" -v w="$wall" 'BEGIN { print a / w }')" "$cpu" \
					"$(awk -v c="$cpu" -v n="$ok" 'BEGIN { print n ? 1e6 * c / n : 0 }')"
				sleep 1
			done
			kill "$uas" 2>/dev/null || true
			wait "$uas" 2>/dev/null || true
			stop
		done
	done
fi

if ! skip relay; then
	section relay
	echo "== relay: rtpload sweep --calls $RELAY_CALLS, ${RELAY_SECS}s windows, Switchboard's relay and rtpengine (userspace), $REPS reps"
	# --kernel-time: a packet's arrival is the kernel's receive timestamp, so
	# the latency is the relay's and the kernels' delivery, not the
	# generator's own wake-up (docs/bench/notes.md, section 8).
	rcmd="bin/rtpload sweep --calls $RELAY_CALLS --duration ${RELAY_SECS}s --warmup 1s --kernel-time --json"
	command_of relay switchboard "$rcmd --relay switchboard"
	command_of relay rtpengine "$rcmd --relay rtpengine (rtpengine --table=-1: userspace forwarding)"
	# The ng driver works against the installed rtpengine before it is measured.
	go test -tags rtpengine -count=1 -run TestGenRTPEngine ./cmd/rtpload >"$work/rtpengine-test.log" 2>&1 ||
		{ cat "$work/rtpengine-test.log" >&2; exit 1; }
	for rep in $(seq "$REPS"); do
		for sys in switchboard rtpengine; do
			bin/rtpload sweep --calls "$RELAY_CALLS" --duration "${RELAY_SECS}s" --warmup 1s --kernel-time --relay $sys --json \
				>"$out/relay-$sys-$rep.json" 2>"$work/relay.err" || { cat "$work/relay.err" >&2; exit 1; }
			echo "  rep $rep $sys: $out/relay-$sys-$rep.json"
		done
	done
fi

section report
echo "load_after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/machine.txt"
bin/benchchart report --dir "$out" --doc docs/benchmarks.md --chart "$out/chart.svg"
echo "== wrote docs/benchmarks.md and $out/chart.svg"
