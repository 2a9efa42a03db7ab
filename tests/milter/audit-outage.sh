#!/bin/sh
# Mail never waits on the database (issue 16): a running milter whose
# SQLite database cannot be written (another connection holds BEGIN
# EXCLUSIVE: the audit writer gets SQLITE_BUSY; reads, and so reloads,
# still work in WAL mode) signs every message at once; the audit rows past
# audit_queue_max (5) go to the spool file; once the lock is gone every row
# is written in the order sent and `smimectl audit verify` passes.  A
# milter stopped (SIGTERM) in an outage spools its rows and, started again,
# writes them first; a torn spool line is reported and the rest imported.
# A reload that cannot build (the database moved away) keeps the old
# snapshot and is logged once.  Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
fx_begin audit-outage
pid='' locker=''
fx_on_exit() {
	[ -n "$locker" ] && kill "$locker" 2>/dev/null
	me_stop "$pid" 15
}
[ -x "$MILTC" ] || bail "tests/bench/miltc is built (make test-bins)"
fx_setup ""
spool=$work/audit.spool
db=$work/smime.db
me_conf "$conf" "$work" "inet:$port@127.0.0.1" 'audit_queue_max = 5;' \
	"audit_spool = \"$spool\";"
log=$work/milter.log
me_start "$conf" "$log" "$port" || bail "milter started"
pid=$ME_PID
sent=''

# rows in the audit log (a reader: works while the writer lock is held)
rows() {
	"$PY" -c 'import sqlite3,sys
c=sqlite3.connect("file:"+sys.argv[1]+"?mode=ro",uri=True,timeout=10)
print(c.execute("select count(*) from audit").fetchone()[0])' "$db"
}
# the Message-IDs of the rows, in id order, one line
ids() {
	"$PY" -c 'import sqlite3,sys
c=sqlite3.connect("file:"+sys.argv[1]+"?mode=ro",uri=True,timeout=10)
print(" ".join(r[0] for r in c.execute("select message_id from audit order by id")))' "$db"
}
wait_rows() {
	_w=0
	while [ "$(rows)" != "$1" ] && [ $_w -lt $((${2:-15} * 10)) ]; do
		sleep 0.1
		_w=$((_w + 1))
	done
	[ "$(rows)" = "$1" ]
}
# hold the write lock until killed
lock_db() {
	rm -f "$work/locked"
	"$PY" -c 'import sqlite3,sys,time
c=sqlite3.connect(sys.argv[1],isolation_level=None)
c.execute("BEGIN EXCLUSIVE")
open(sys.argv[2],"w").close()
time.sleep(600)' "$db" "$work/locked" &
	locker=$!
	_w=0
	while [ ! -f "$work/locked" ] && [ $_w -lt 100 ]; do
		sleep 0.1
		_w=$((_w + 1))
	done
	[ -f "$work/locked" ]
}
unlock_db() {
	kill "$locker" 2>/dev/null
	wait "$locker" 2>/dev/null
	locker=''
}
# send one message with Message-ID <$1@test>; 0 when it comes back signed
# within 3 s (the database's busy timeout is 5 s: mail that waited on it
# would take longer)
send() {
	printf 'From: Andi <andi@banjarkota.go.id>\r\nTo: x@example.org\r\nSubject: o\r\nMessage-ID: <%s@test>\r\n\r\nHalo.\r\n' "$1" >"$work/m.eml"
	rm -f "$work/out"
	_t0=$(date +%s%N)
	"$MILTC" -s "inet:$port@127.0.0.1" -n 1 -o "$work/out" "$work/m.eml" >/dev/null 2>&1
	_ms=$((($(date +%s%N) - _t0) / 1000000))
	sent="$sent${sent:+ }<$1@test>"
	[ "$_ms" -gt "${slowest:-0}" ] && slowest=$_ms
	grep -q '^#ADD Content-Type: multipart/signed' "$work/out" 2>/dev/null && [ "$_ms" -lt 3000 ]
}
send_all() {
	_bad=0
	for _m in "$@"; do
		send "$_m" || _bad=$((_bad + 1))
	done
	return $_bad
}

# release the lock; three checks: all $1 rows written, in the order sent
# ($2 says so), and the chain verifies
after_outage() {
	unlock_db
	wait_rows "$1" 20
	tap $? "the lock gone: all $1 rows are written ($(rows))"
	[ "$(ids)" = "$sent" ]
	tap $? "$2"
	[ "$(ids)" = "$sent" ] || printf '# got:  %s\n# sent: %s\n' "$(ids)" "$sent"
	"$CTL" -c "$conf" audit verify >"$work/verify.out" 2>&1
	tap $? "smimectl audit verify passes"
}

send_all before-1 before-2
tap $? "two messages signed with the database writable"
wait_rows 2
tap $? "their two audit rows are written"

# ---- an outage: 12 messages, 5 rows may wait in memory ----------------
lock_db || bail "a python3 connection holds the database's write lock"
slowest=0
send_all o-01 o-02 o-03 o-04 o-05 o-06 o-07 o-08 o-09 o-10 o-11 o-12
tap $? "12 messages signed in the outage, each answered within 3 s (slowest ${slowest} ms)"
me_wait_log "$log" "spooling audit rows to $spool" 20
tap $? "the log says the rows are spooled, with the path"
[ -s "$spool" ] && [ "$(grep -c '^A1	' "$spool")" -ge 7 ]
tap $? "the spool file holds the rows past audit_queue_max ($(grep -c . "$spool" 2>/dev/null) lines)"
[ "$(rows)" = 2 ]
tap $? "no row reached the locked database"
[ "$(grep -c 'database unreachable' "$log")" = 1 ] &&
	[ "$(grep -c 'spooling audit rows' "$log")" = 1 ]
tap $? "the outage and the spooling are each logged once"
kill -0 "$pid"
tap $? "the milter kept running"

after_outage 14 "the rows are in the order the messages were sent"
[ ! -e "$spool" ]
tap $? "the spool file is removed once its rows are committed"
me_wait_log "$log" "database back, 12 audit rows written" 5
tap $? "the log says the database is back, with the rows written"

# ---- a reload that cannot build keeps the old snapshot, logged once ----
mv "$db" "$db.away"
kill -USR1 "$pid"
me_wait_log "$log" "reload failed, keeping the previous configuration" 10
tap $? "a reload without the database fails and keeps the old snapshot"
kill -USR1 "$pid"
me_wait_log "$log" "reload failed again (2 attempts" 10
[ "$(grep -c 'reload failed, keeping the previous' "$log")" = 1 ]
tap $? "a second failing reload is not logged again as an error"
send_all r-1
tap $? "the old snapshot still signs while the database is away"
mv "$db.away" "$db"
kill -USR1 "$pid"
me_wait_log "$log" "reload works again after 2 failed attempts" 10
tap $? "the next good reload says so"
wait_rows 15

# ---- stopped in an outage, started again -------------------------------
lock_db || bail "the write lock again"
send_all s-1 s-2 s-3
tap $? "three messages signed in a second outage"
"$CTL" -c "$conf" reload >/dev/null 2>&1
me_wait_log "$log" "reloaded: generation 3" 10
tap $? "a reload in the outage builds (reads work) and swaps the snapshot"
send_all s-4
tap $? "the new snapshot signs"
kill "$pid"
_w=0
while kill -0 "$pid" 2>/dev/null && [ $_w -lt 150 ]; do
	sleep 0.1
	_w=$((_w + 1))
done
! kill -0 "$pid" 2>/dev/null
tap $? "SIGTERM in the outage: the milter stops ($((_w / 10)) s)"
pid=''
grep -q "4 audit rows spooled to $spool" "$log"
tap $? "its 4 unwritten rows (before and after the reload) go to the spool"
[ "$(grep -c '^A1	' "$spool")" = 4 ]
tap $? "the spool holds them"
printf 'A1\t1767225600\tQ-torn\t<torn@te' >>"$spool"
mv "$log" "$work/milter-1.log"
me_start "$conf" "$log" "$port" || bail "milter started again in the outage"
pid=$ME_PID
send_all a-1 a-2
tap $? "the restarted milter signs in the outage"
sleep 1
[ "$(rows)" = 15 ]
tap $? "nothing written while the lock is held"
after_outage 21 "in order: the spool from before first, then the new rows"
grep -q "1 line not imported (line 5: torn)" "$log"
tap $? "the torn spool line is reported"
grep -q 'Q-torn' "$spool.bad" 2>/dev/null && [ ! -e "$spool" ]
tap $? "it is kept in PATH.bad, not imported, and the spool is removed"
fx_no_sanitizer "no sanitizer report in the milter logs" "$work/milter-1.log" "$log"
echo "1..$n"
