#!/usr/bin/env bash
# Installs what `make bench` compares Switchboard against, from Debian's
# packages, when missing: Kamailio (registrar and stateful proxy) and
# rtpengine (media relay, used in userspace mode), plus SIPp, and for
# Kamailio's durable registrar (usrloc writing through to SQLite) its
# db_sqlite module and the sqlite3 shell that creates the database. Only the
# benchmarks need these; `make test` does not install them.
set -euo pipefail
need=()
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
command -v kamailio >/dev/null 2>&1 || need+=(kamailio)
command -v kamcmd >/dev/null 2>&1 || need+=(kamailio)
[ -e /usr/lib/x86_64-linux-gnu/kamailio/modules/db_sqlite.so ] || [ -e /usr/lib/kamailio/modules/db_sqlite.so ] ||
	dpkg-query -W -f '${Status}' kamailio-sqlite-modules 2>/dev/null | grep -q 'ok installed' || need+=(kamailio-sqlite-modules)
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
command -v rtpengine >/dev/null 2>&1 || need+=(rtpengine-daemon)
command -v curl >/dev/null 2>&1 || need+=(curl)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
		echo "missing ${need[*]}: install them (apt-get install ${need[*]}) or run as root" >&2
		exit 1
	fi
fi
echo "installing ${need[*]}"
${SUDO:-} apt-get update -qq
# --no-install-recommends keeps rtpengine's kernel module (DKMS) out: the
# comparison is with rtpengine's userspace forwarding. The packages' services
# are not started (the benchmark runs its own instances on loopback).
DEBIAN_FRONTEND=noninteractive ${SUDO:-} apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
