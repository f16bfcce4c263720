#!/usr/bin/env bash
# The function autoscaler under a surge: a 200 ms function, target concurrency 1, goes from 1 to
# 50 concurrent callers on a control plane, two agents and an lb (real processes on loopback).
# Prints the time from the start of the surge until the autoscaler's placements and the running
# instances reach it, the latency p50/p99 of every call made during it, and that none failed.
#
#   bench/surge.sh [RUNS]     default: 3
#
# It runs the end-to-end test that asserts the behaviour (tests/tests/scheduling.rs), which
# prints its measurements; the test itself asserts no timing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs="${1:-3}"
cargo build --quiet --workspace --bins
for i in $(seq 1 "$runs"); do
    cargo nextest run -p fjord-tests --test scheduling --no-capture a_surge 2>&1 \
        | grep -E '^surge ' | sed "s/^/run $i: /"
done
