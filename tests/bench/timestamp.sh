#!/bin/sh
# timestamp.sh -- figure (j) of make bench (issue 14): signing with an RFC
# 3161 signature time-stamp from a loopback TSA (tests/lib/tsa.sh:
# `openssl ts -reply` behind HTTP, a new process per request) as a ratio to
# signing without one.  Reported, not targeted: it is a network round trip
# (and here an openssl process) per message.  In-process, one thread on
# CPU 0 (bench_core), the 4 KB message, BENCH_TS_ROUNDS pairs (default 5)
# in alternating order; the median of the pair ratios.  The time-stamped
# side runs with on_timestamp_failure = "tempfail", so bench_core fails
# when any message goes without a token, and a -t run first must log
# "time-stamped": the figure cannot be that of a TSA that did not answer.
# Prints one Markdown table row, then a line of detail.
set -eu
TOP=$(cd "$(dirname "$0")/../.." && pwd)
cd "$TOP"
. tests/bench/lib.sh
bench_begin ts
rounds=${BENCH_TS_ROUNDS:-5}
bench_on_exit() { tsa_stop; }
. tests/lib/tsa.sh
pki=${BENCH_PKI:-$work/pki}
bench_setup "$pki" "$(bench_port)"
bench_messages
tsa_start "$work/tsa" >&2 || { echo "timestamp.sh: the loopback TSA did not start" >&2; exit 1; }
cp "$conf" "$work/ts.conf"
printf 'timestamp_url = "%s";\ntimestamp_ca_file = "%s";\n' "$tsa_url" \
	"$work/tsa/a-ca.crt" >>"$work/ts.conf"
echo 'on_timestamp_failure = "tempfail";' >>"$work/ts.conf"
milter/smime-milter -c "$work/ts.conf" -t "$work/4k.eml" >/dev/null 2>"$work/t.err"
grep -q ", time-stamped " "$work/t.err" || {
	echo "timestamp.sh: no time-stamp on a -t signature:" >&2
	cat "$work/t.err" >&2
	exit 1
}
core() { taskset -c 0 tests/bench/bench_core "$1" "$work/4k.eml" "$secs"; }
pairs_alternate "$rounds" "$work/ts.pairs" 'core "$conf"' 'core "$work/ts.conf"'
medians "$work/ts.pairs" "ratio without-msg/s with-msg/s"
echo "| (j) signing with an RFC 3161 time-stamp from a loopback TSA vs without, 4 KB, in-process ($rounds pairs) | $m3 msg/s | $m2 | $m1 | (report) |"
echo "time-stamp: $mtext; load $(uptime | sed 's/.*average: //')"
