#!/bin/sh
# pg.sh -- figure (k) of make bench (issue 16): signing throughput with the
# store on PostgreSQL as a ratio to the same on SQLite, in one run.  Two
# daemons of the same configuration but for `database` (and key_dir): one
# on an SQLite file, one on a private PostgreSQL 15 (tests/lib/pg.sh: a
# unix socket in the scratch directory, fsync off as in the tests), the
# same mailbox and key imported into each.  The 4 KB message over the
# milter protocol, 8 connections (miltc -c 8), every reply checked (an
# added multipart/signed Content-Type, a body with the signature);
# BENCH_PG_ROUNDS pairs (default 5) in alternating order (pairs_alternate),
# the median of the pair ratios.  The database is read when a snapshot is
# built, not per message; what each message writes is its audit row, in
# batches, so the PostgreSQL daemon must have written one audit row per
# message it signed (counted after it stopped) or the figure is refused.
# Besides the rates, the CPU per message of each side: the daemon's
# (utime+stime from /proc) and, on PostgreSQL, the server's too (the
# postmaster and its backends), a ratio that moves less with the load.
# Prints one Markdown table row, then lines of detail.  BENCH_SECONDS sets
# the length of each run, BENCH_PKI a tests/lib/pki.sh directory to use.
set -eu
TOP=$(cd "$(dirname "$0")/../.." && pwd)
cd "$TOP"
. tests/bench/lib.sh
. tests/lib/pg.sh
bench_begin pg
rounds=${BENCH_PG_ROUNDS:-5}
ppid_=""
bench_on_exit() {
	[ -n "$ppid_" ] && { kill "$ppid_" && wait "$ppid_"; } 2>/dev/null
	pg_stop
}
pki=${BENCH_PKI:-$work/pki}
port=$(bench_port)
bench_setup "$pki" "$port"
bench_messages
pg_start "$work" >&2 || { echo "pg.sh: the private PostgreSQL did not start" >&2; exit 1; }
pg_createdb smime
pport=$(bench_port)
sconf=$conf
conf=$work/pg.conf
sed -e "s/inet:$port@/inet:$pport@/" -e "s|^database = .*|database = \"$(pg_uri smime)\";|" \
	-e "s|^key_dir = .*|key_dir = \"$work/keys-pg\";|" "$sconf" >"$conf"
admin/smimectl -c "$conf" init >/dev/null
admin/smimectl -c "$conf" import --mailbox andi@banjarkota.go.id \
	--kind individual --p12 "$pki/andi.p12" --passphrase-file "$pki/andi.pass" >/dev/null
start_milter "$work/pg.log"
ppid_=$pid
conf=$sconf
start_milter

# ticks PID...: the CPU clock ticks the processes used (with their reaped
# children's)
ticks() {
	for _p; do cat "/proc/$_p/stat" 2>/dev/null; done |
		awk '{ s += $14 + $15 + $16 + $17 } END { print s + 0 }'
}
pgpids() { # the postmaster and its children
	_pm=$(head -1 "$PG_DIR/data/postmaster.pid")
	echo "$_pm" $(ps -o pid= --ppid "$_pm")
}
hz=$(getconf CLK_TCK)
# side PORT N [CPUFILE]: N messages over 8 connections; the miltc line, or
# nothing (and the reason on stderr) unless every reply passed the checks;
# with CPUFILE, the ms of CPU per message (the daemon of PORT, and the
# PostgreSQL server for its port) appended to it
side() {
	if [ "$1" = "$port" ]; then _pids=$pid; else _pids="$ppid_ $(pgpids)"; fi
	_c0=$(ticks $_pids)
	_r=$(tests/bench/miltc -s "inet:$1@127.0.0.1" -c 8 -n "$2" \
		-H 'Content-Type:multipart/signed' -B 'application/pkcs7-signature' \
		"$work/4k.eml") || { echo "pg.sh: port $1: $_r" >&2; return 0; }
	_c1=$(ticks $_pids)
	[ -n "${3:-}" ] && awk -v a="$_c0" -v b="$_c1" -v hz="$hz" -v n="$2" \
		'BEGIN { printf "%.3f\n", (b - a) * 1000 / hz / n }' >>"$3"
	case $_r in *" checked=$2 bad=0"*) echo "$_r" ;; *) echo "pg.sh: port $1: $_r" >&2 ;; esac
}
# warm-up of both, then runs of about BENCH_SECONDS at the SQLite rate
r=$(side "$port" 400 | rate_of)
side "$pport" 400 >/dev/null
n=$(awk -v r="${r:-0}" -v s="$secs" 'BEGIN { n = int(r * s / 8) * 8; if (n < 64) n = 64; print n }')
load0=$(uptime | sed 's/.*load average: //')
pairs_alternate "$rounds" "$work/pg.pairs" 'side "$port" "$n" "$work/s.cpu"' \
	'side "$pport" "$n" "$work/p.cpu"'
paste -d' ' "$work/s.cpu" "$work/p.cpu" | awk '{ printf "%.3f %s %s\n", $1 / $2, $1, $2 }' >"$work/cpu.pairs"
medians "$work/cpu.pairs" "ratio sqlite-ms postgresql-ms"
cpu="$m1 (SQLite $m2 ms, PostgreSQL $m3 ms per message, daemon and server; $mtext)"
load1=$(uptime | sed 's/.*load average: //')
awk 'NF != 3 { exit 1 }' "$work/pg.pairs" && [ "$(wc -l <"$work/pg.pairs")" = "$rounds" ] || {
	echo "pg.sh: a run failed its reply checks:" >&2
	cat "$work/pg.pairs" >&2
	exit 1
}
# the audit queue is written at shutdown: then every row is in PostgreSQL
kill "$ppid_"
wait "$ppid_" 2>/dev/null || true
ppid_=""
signed=$((400 + rounds * n))
rows=$(pg_psql smime "SELECT count(*) FROM audit WHERE action = 'signed'")
[ "$rows" = "$signed" ] || {
	echo "pg.sh: $signed messages signed on PostgreSQL, $rows audit rows there" >&2
	exit 1
}
medians "$work/pg.pairs" "ratio sqlite-msg/s postgresql-msg/s"
echo "| (k) signing with the store on PostgreSQL vs SQLite, 4 KB, 8 connections, alternating ($rounds pairs) | $m3 msg/s | $m2 msg/s | $m1 | >= 0.95 |"
echo "postgresql: CPU per message, ratio $cpu"
echo "postgresql: $mtext; runs of $n messages; $rows audit rows in PostgreSQL, one per message signed there; load average before $load0, after $load1"
