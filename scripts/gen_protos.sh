#!/usr/bin/env bash
# Regenerates the Python stubs for protos/ into services/proto/. Never edit the output by hand.
# Usage: scripts/gen_protos.sh [PYTHON]   (default: .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
export PATH="$(dirname "$PY"):$PATH"  # protoc-gen-mypy lives beside the interpreter
OUT=services/proto
rm -rf "$OUT/relman"
mkdir -p "$OUT/relman/v1"
"$PY" -m grpc_tools.protoc -I protos \
  --python_out="$OUT" --grpc_python_out="$OUT" --mypy_out="$OUT" --mypy_grpc_out="$OUT" \
  protos/relman/v1/*.proto
: > "$OUT/relman/__init__.py"
: > "$OUT/relman/v1/__init__.py"
: > "$OUT/relman/py.typed"
