#!/usr/bin/env bash
# Runs every fuzz target for a bounded time: `npm run fuzz -- [seconds per target] [target...]`
# (default 60 s each, every target). Needs the nightly toolchain and cargo-fuzz, and installs
# cargo-fuzz when it is missing. New inputs go to fuzz/corpus/<target>/ (not committed); the
# committed seeds in fuzz/seeds/<target>/ start each run. A crash stops the run with its input
# saved in fuzz/artifacts/<target>/: replay it with `cargo +nightly fuzz run <target> <file>`,
# fix it, and add the input to the stable corpus tests (src/tls/tests.rs) as a regression.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(tls_server tls_client batch proxy)
[[ $seconds =~ ^[0-9]+$ ]] || { echo "seconds must be a whole number, got '$seconds'" >&2; exit 2; }
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzzing needs the nightly toolchain: rustup toolchain install nightly" >&2
  exit 1
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "seeds/$target"
  echo "=== $target: ${seconds}s"
  log=$(mktemp)
  status=0
  cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)|ERROR|panicked|SUMMARY' "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -40 "$log" >&2
    echo "$target failed (exit $status): the failing input is in fuzz/artifacts/$target/" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
done
