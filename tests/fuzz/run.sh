#!/bin/sh
# tests/fuzz/run.sh SECONDS -- run each fuzz target (built by `make fuzz`)
# for SECONDS on a copy of the seed corpus, with -jobs=1.  Prints libFuzzer's
# last status line (execs, cov, ft) and a summary line per target.  Crashes
# land in tests/fuzz/out/TARGET/ (crash-*, leak-*, timeout-*); minimize with
#   tests/fuzz/fuzz_mime -minimize_crash=1 -runs=10000 CRASH
# and add the result to tests/fuzz/regress/.  Exit 1 if a target crashed.
# FUZZ_TARGETS="fuzz_cmsdec" runs only the targets named.  fuzz_inbound's
# seeds are made here (tests/fuzz/mkseeds-inbound.sh) for the keys of
# out/env; reproduce its crashes with FUZZ_EOM_CONF=tests/fuzz/out/env/m.conf.
set -u
TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
export TOP
secs=${1:-60}
out=$TOP/tests/fuzz/out
rm -rf "$out"
mkdir -p "$out"
env=$out/env
if ! sh "$TOP/tests/fuzz/mkenv.sh" "$env"; then
	echo "fuzz: cannot build the test PKI and configuration" >&2
	exit 1
fi
export FUZZ_EOM_CONF=$env/m.conf
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# open bugs fuzz_inbound steps over (tests/fuzz/KNOWN), so that a run finds
# new ones; drop a word when its KNOWN line is fixed
export FUZZ_INBOUND_KNOWN=${FUZZ_INBOUND_KNOWN-}
status=0
for t in ${FUZZ_TARGETS:-fuzz_mime fuzz_eom fuzz_cmsdec fuzz_inbound fuzz_evidence}; do
	bin=$TOP/tests/fuzz/$t
	mkdir -p "$out/$t/corpus" "$out/$t/artifacts"
	case $t in
	fuzz_cmsdec) # DER, not messages: a corpus of its own
		cp "$TOP"/tests/fuzz/seeds-cmsdec/* "$out/$t/corpus/" 2>/dev/null ;;
	fuzz_inbound) # made for this environment's keys, + its regressions
		sh "$TOP/tests/fuzz/mkseeds-inbound.sh" "$env" "$out/$t/corpus" || status=1
		cp "$TOP"/tests/fuzz/regress-inbound/* "$out/$t/corpus/" 2>/dev/null ;;
	*)
		cp "$TOP"/tests/fuzz/seeds/* "$TOP"/tests/fuzz/regress/* "$out/$t/corpus/" 2>/dev/null ;;
	esac
	echo "== $t: ${secs}s on $(ls "$out/$t/corpus" | wc -l) seed files"
	start=$(date +%s)
	"$bin" -jobs=1 -workers=1 -max_total_time="$secs" -max_len=65536 \
		-timeout=20 -rss_limit_mb=1024 -print_final_stats=1 \
		-artifact_prefix="$out/$t/artifacts/" "$out/$t/corpus" \
		>"$out/$t.log" 2>&1
	rc=$?
	# with -jobs the output goes to fuzz-0.log in the current directory
	[ -f fuzz-0.log ] && mv fuzz-0.log "$out/$t.log"
	el=$(($(date +%s) - start))
	last=$(grep -E '^#[0-9]+' "$out/$t.log" | tail -1)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$t.log" | tail -1)
	echo "   last: $last"
	echo "   $t: ${execs:-?} execs in ${el}s ($(( ${execs:-0} / (el > 0 ? el : 1) )) execs/s)," \
		"$(echo "$last" | grep -oE 'cov: [0-9]+ ft: [0-9]+'), corpus $(ls "$out/$t/corpus" | wc -l) files"
	crashes=$(ls "$out/$t/artifacts" | wc -l)
	if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
		echo "   $t: CRASH (exit $rc), artifacts in $out/$t/artifacts:"
		ls "$out/$t/artifacts" | sed 's/^/     /'
		grep -E 'ERROR|SUMMARY|runtime error|^fuzz_' "$out/$t.log" | head -5 | sed 's/^/     /'
		status=1
	fi
done
exit $status
