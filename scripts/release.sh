#!/usr/bin/env bash
# Builds the release binary and splits off its debug info: `dist/vigil` is what ships (symbols
# for function names in backtraces, no line tables), `dist/vigil.debug` holds the line tables.
# The binary names its debug file (.gnu_debuglink), so gdb, perf and `addr2line -e` find it
# when it sits beside the binary or under /usr/lib/debug.
#
#   scripts/release.sh [OUT_DIR]      # default: dist
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-dist}"
command -v objcopy >/dev/null || { echo "objcopy not found; install binutils" >&2; exit 1; }
cargo build --release --locked
built="${CARGO_TARGET_DIR:-target}/release/vigil"
mkdir -p "$out"
objcopy --only-keep-debug "$built" "$out/vigil.debug"
objcopy --strip-debug --add-gnu-debuglink="$out/vigil.debug" "$built" "$out/vigil"
"$out/vigil" --version
ls -l "$out/vigil" "$out/vigil.debug"
