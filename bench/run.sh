#!/usr/bin/env bash
# Benchmarks: see bench.py. `make bench` runs this.
set -euo pipefail
exec /usr/bin/python3 "$(dirname "$0")/bench.py" "$@"
