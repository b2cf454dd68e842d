#!/usr/bin/env bash
# Bounded load test of `cnnspot serve` on 127.0.0.1: a fixed number of
# requests at 1, 4 and 16 concurrent clients, each level stopping at its time
# limit; prints throughput, p50/p99 latency and memory before and after.
# Flags go to the example (see crates/cnnspot-serve/examples/loadtest.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release -q -p cnnspot-serve --example loadtest -- "$@"
