#!/bin/bash
# Times one pe_cxr run the way docs/benchmarks.md reports it: /usr/bin/time -v figures, every
# progress line stamped with the seconds since the start, and the report's md5 sums (to check that
# two builds give byte-identical reports).
#
# usage: tools/pipeline/time_run.sh BINARY OUT_DIR [pe_cxr args, e.g. --quick]
#   BINARY: a built pe_cxr (target/release/examples/pe_cxr)
#   writes OUT_DIR (the run), OUT_DIR.log (stamped progress) and OUT_DIR.time (time -v)
set -euo pipefail
bin=$1
out=$2
shift 2
rm -rf "$out"
start=$(date +%s.%N)
/usr/bin/time -v -o "$out.time" "$bin" --out "$out" "$@" 2>&1 >/dev/null |
    while IFS= read -r line; do
        now=$(date +%s.%N)
        printf '%7.1f %s\n' "$(awk -v a="$now" -v b="$start" 'BEGIN { print a - b }')" "$line"
    done >"$out.log"
grep -E "Elapsed|User time|System time|Minor|Involuntary|Voluntary|Maximum resident" "$out.time" |
    sed 's/^\s*//'
md5sum "$out/report.md" "$out/report.json"
