#!/bin/sh
# Runs every test of the suite and ends with "N passed, N failed".
# Each test prints TAP lines ("ok N - ...", "not ok N - ..."); a test that
# exits non-zero without a "not ok" line counts as one failure.
# TESTS="unit admin milter e2e" narrows the run; VERBOSE=1 shows every line.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
export TOP="$top"
passed=0
failed=0
log_dir=${TEST_LOG_DIR:-$top/tests/logs}
mkdir -p "$log_dir"
groups=${TESTS:-"unit admin milter e2e"}

run_one() {
	name=$1
	shift
	log="$log_dir/$(echo "$name" | tr '/ ' '__').log"
	t0=$(date +%s)
	"$@" >"$log" 2>&1 </dev/null
	rc=$?
	secs=$(($(date +%s) - t0))
	p=$(grep -c '^ok ' "$log")
	f=$(grep -c '^not ok ' "$log")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
		echo "not ok - $name exited $rc" >>"$log"
	fi
	if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
		f=1
		echo "not ok - $name ran no check" >>"$log"
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$f" -gt 0 ]; then
		echo "FAIL $name ($p passed, $f failed, ${secs}s; log: $log)"
		grep -E '^(not ok|#)' "$log" | head -40 | sed 's/^/    /'
		tail -15 "$log" | sed 's/^/    | /'
	else
		echo "ok   $name ($p checks, ${secs}s)"
	fi
	[ "${VERBOSE:-0}" = 1 ] && cat "$log"
	return 0
}

for g in $groups; do
	case $g in
	unit)
		for t in tests/unit/test_*; do
			case $t in *.c) continue ;; esac
			[ -x "$t" ] && run_one "$t" "$t"
		done
		;;
	*)
		for t in tests/$g/*.sh; do
			[ -f "$t" ] && run_one "$t" sh "$t"
		done
		;;
	esac
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
