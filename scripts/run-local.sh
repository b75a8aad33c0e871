#!/usr/bin/env bash
# Runs the Release service and the Deployer in the foreground until Ctrl-C (`make run`).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
"$BIN/relman-release" &
release=$!
"$BIN/relman-deployer" &
deployer=$!
stop() { kill -TERM "$release" "$deployer" 2>/dev/null || true; }
trap stop INT TERM
echo "relman: Release service on ${RELMAN_RELEASE_ADDR:-127.0.0.1:50051}, Deployer on ${RELMAN_DEPLOYER_ADDR:-127.0.0.1:50052}; Ctrl-C stops both" >&2
echo "relman: try  $BIN/relman apps create myapp" >&2
status=0
wait -n "$release" "$deployer" || status=$?
stop
wait || true
exit "$status"
