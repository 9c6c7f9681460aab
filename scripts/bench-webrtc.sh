#!/usr/bin/env bash
# make bench, WebRTC part: a Go load client (pion peers over SIP over
# WebSocket, no browser) holds WEBRTC_CALLS concurrent calls bridged to
# plain RTP phones through the real server on 127.0.0.1 for WEBRTC_HOLD, and
# reports call setup time (INVITE to first audio packet) and packet loss both
# ways. Figures go to docs/bench/webrtc-load.txt.
#
#   WEBRTC_CALLS  concurrent bridged calls (default 200)
#   WEBRTC_HOLD   how long all calls are held (default 10s)
set -euo pipefail
cd "$(dirname "$0")/.."
export WEBRTC_CALLS=${WEBRTC_CALLS:-200}
export WEBRTC_HOLD=${WEBRTC_HOLD:-10s}
mkdir -p docs/bench
out=docs/bench/webrtc-load.txt
{
	echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# WEBRTC_CALLS=$WEBRTC_CALLS WEBRTC_HOLD=$WEBRTC_HOLD"
	go test -run '^$' -bench BridgedCalls -benchtime 1x -timeout 10m ./cmd/switchboard/ 2>&1 | grep -v 'ref went negative'
} | tee "$out"
