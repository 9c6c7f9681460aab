#!/usr/bin/env bash
# Installs the programs the tests and benchmarks drive, from Debian's
# packages, when they are not on the machine yet.
set -euo pipefail
need=()
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
# Headless Chromium drives the browser phone and admin page tests.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# npm installs JsSIP (into .cache/, never committed) for the interop test.
command -v npm >/dev/null 2>&1 || need+=(npm)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
		echo "missing ${need[*]}: install them (apt-get install ${need[*]}) or run as root" >&2
		exit 1
	fi
fi
echo "installing ${need[*]}"
${SUDO:-} apt-get update -qq
DEBIAN_FRONTEND=noninteractive ${SUDO:-} apt-get install -y -qq "${need[@]}" >/dev/null
