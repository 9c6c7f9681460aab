#!/usr/bin/env bash
# bench-ab.sh BEFORE AFTER: before/after figures for an optimisation. Runs
# two switchboard binaries back to back, REPS times, under the same SIPp
# REGISTER load (digest auth, USERS distinct users, RATE/s for SECS s) and
# prints each run and the medians of server CPU per REGISTER, achieved rate
# and failures. Used for the before/after tables in docs/bench/notes.md:
#
#   git stash; make build; cp bin/switchboard /tmp/before; git stash pop; make build
#   scripts/bench-ab.sh /tmp/before bin/switchboard
#
#   SCENARIO  register (default) or calls
#   RATE      offered rate (default 1500)   SECS   seconds (default 8)
#   USERS     distinct users (default 20000) REPS  repetitions (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: $0 BEFORE_BINARY AFTER_BINARY" >&2; exit 2; }
SCENARIO=${SCENARIO:-register}
RATE=${RATE:-1500}
SECS=${SECS:-8}
USERS=${USERS:-20000}
REPS=${REPS:-5}
port=28060
work=$(mktemp -d)
srv=
uas=
trap '[ -n "$srv" ] && kill $srv 2>/dev/null; [ -n "$uas" ] && kill $uas 2>/dev/null; rm -rf "$work"' EXIT
tck=$(getconf CLK_TCK)
cpu_s() { awk -v h="$tck" '{ printf "%.2f", ($14 + $15) / h }' "/proc/$1/stat"; }
{
	printf 'sip:\n  listen: "127.0.0.1:%s"\n' "$port"
	printf 'media: {port_min: 40000, port_max: 59999}\n'
	printf 'web: {listen: "127.0.0.1:%s", api_tokens: ["bench-token"]}\n' $((port + 1))
	printf 'storage: {path: "%s/sb.db"}\ncontrol: {socket: "%s/sb.sock"}\n' "$work" "$work"
	printf 'log: {level: warn}\ndebug: {listen: "127.0.0.1:%s"}\nusers:\n' $((port + 2))
	awk -v n="$USERS" 'BEGIN { for (i = 0; i < n; i++) printf "  - {name: \"u%d\", password: \"pass%d\"}\n", i, i }'
} >"$work/sb.yaml"
awk -v n="$USERS" 'BEGIN { print "SEQUENTIAL"; for (i = 0; i < n; i++) printf "u%d;[authentication username=u%d password=pass%d]\n", i, i, i }' >"$work/users.csv"
printf 'SEQUENTIAL\nu1;[authentication username=u1 password=pass1]\n' >"$work/uas.csv"
printf 'SEQUENTIAL\nu0;[authentication username=u0 password=pass0]\n' >"$work/uac.csv"
echo "# $SCENARIO at ${RATE}/s for ${SECS}s, $REPS reps, $(date -u +%Y-%m-%dT%H:%MZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# before: $1"
echo "# after:  $2"
for rep in $(seq "$REPS"); do
	for which in before after; do
		bin=$1
		[ $which = after ] && bin=$2
		rm -f "$work/sb.db"*
		"$bin" serve --config "$work/sb.yaml" 2>"$work/sb.log" &
		srv=$!
		for _ in $(seq 300); do curl -sf "http://127.0.0.1:$((port + 1))/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
		if [ "$SCENARIO" = calls ]; then
			sipp 127.0.0.1:$port -sf sipp/register_auth.xml -inf "$work/uas.csv" -m 1 -i 127.0.0.1 -p $((port + 20)) -nostdin -timeout 10s >/dev/null 2>&1 || true
			sipp -sf sipp/uas_answer.xml -i 127.0.0.1 -p $((port + 20)) -mi 127.0.0.1 -mp 36000 -nostdin -timeout $((SECS + 60))s >/dev/null 2>&1 &
			uas=$!
			args=(-sf sipp/uac_setup.xml -inf "$work/uac.csv" -s u1 -d 100 -l $((RATE * 5)) -p $((port + 30)) -mi 127.0.0.1 -mp 36100)
		else
			args=(-sf sipp/register_auth.xml -inf "$work/users.csv" -l $((RATE * 2)) -p $((port + 10)))
		fi
		sleep 0.5
		c0=$(cpu_s $srv)
		t0=$(date +%s.%N)
		sipp 127.0.0.1:$port "${args[@]}" -r "$RATE" -m $((RATE * SECS)) -recv_timeout 5000 -timeout $((SECS + 20))s \
			-i 127.0.0.1 -nostdin >"$work/sipp.txt" 2>&1 || true
		wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
		c1=$(cpu_s $srv)
		read -r ok bad < <(awk '/Successful call/ { ok = $NF } /Failed call/ { bad = $NF } END { printf "%d %d\n", ok, bad }' "$work/sipp.txt")
		kill $srv; wait $srv 2>/dev/null || true
		srv=
		if [ -n "$uas" ]; then kill $uas 2>/dev/null; wait $uas 2>/dev/null || true; uas=; fi
		awk -v w=$which -v r="$rep" -v ok="$ok" -v bad="$bad" -v wall="$wall" -v c0="$c0" -v c1="$c1" 'BEGIN {
			printf "%s\t%d\tok=%d\tfailed=%d\tachieved=%.0f/s\tcpu_us=%.0f\n", w, r, ok, bad, ok / wall, ok ? 1e6 * (c1 - c0) / ok : 0 }' |
			tee -a "$work/runs.tsv"
	done
done
awk -F'\t' '
	function med(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
	{ split($6, c, "="); split($5, r, "="); split($4, f, "="); sub("/s", "", r[2])
	  if ($1 == "before") { nb++; cb[nb] = c[2]; rb[nb] = r[2]; fb += f[2] } else { na++; ca[na] = c[2]; ra[na] = r[2]; fa += f[2]; q[na] = cb[na] / c[2] } }
	END { printf "median CPU us per scenario: before %.0f, after %.0f; median per-rep ratio before/after %.2fx\n", med(cb, nb), med(ca, na), med(q, na)
	      printf "median achieved/s: before %.0f, after %.0f; failed in total: before %d, after %d\n", med(rb, nb), med(ra, na), fb, fa }' "$work/runs.tsv"
