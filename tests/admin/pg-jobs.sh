#!/bin/sh
# Run-once jobs and reload across nodes (issue 16), on a private PostgreSQL
# 15 (tests/lib/pg.sh).  Two configurations on one database are two nodes.
# (a) `smimectl notify` started on both nodes at once: each alert is sent
# once, the loser says another node runs it, a later run sends nothing;
# `crl fetch` and `audit anchor` do nothing while their advisory lock is
# held (by psql); a notify whose connection is cut takes its lock again,
# or stops when another node took it meanwhile; on SQLite two notify runs
# at once on one host send each alert once.  (b) Two milters on the database: a mapping changed with
# smimectl on node A and `smimectl reload` with A's configuration (B's
# pidfile not given to it) reach B through NOTIFY; PostgreSQL restarted,
# B's listener reconnects (said once) and a later reload still reaches B.
# Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
. "$TOP/tests/lib/pg.sh"
fx_begin pgjobs
pa= pb= holder=
fx_on_exit() {
	me_stop "$pa"
	me_stop "$pb"
	[ -n "$holder" ] && kill "$holder" 2>/dev/null
	pg_stop
}
[ -x "$MILTC" ] || bail "tests/bench/miltc is built (make test-bins)"

pg_start "$work" || bail "a private PostgreSQL 15"
ok "a private PostgreSQL on a unix socket in $PG_DIR"
pg_createdb smime || bail "CREATE DATABASE smime"
uri=$(pg_uri smime)

fx_pki || bail "test PKI"
for spec in soon5:5:5005 soon20:20:5020; do
	name=${spec%%:*} rest=${spec#*:}
	fx_issue "$name" "$pki" "${rest#*:}" "${rest%%:*}" \
		"/CN=$name/O=Pemerintah Kota Banjar" "$name@banjarkota.go.id" ||
		bail "issue $name"
done

# a sendmail that records each mail and takes a while (so runs overlap)
mkdir -p "$work/mails"
cat >"$work/slow-sendmail" <<EOF
#!/bin/sh
touch "$work/sending"
sleep 2
f=\$(mktemp "$work/mails/mail.XXXXXX")
cat >"\$f"
EOF
chmod 755 "$work/slow-sendmail"
chmod 777 "$work/mails"

set -- $(me_free_ports 3)
port_a=$1 port_b=$2 closed=$3
node() { # node CONF PORT DATABASE [EXTRA...]
	_nc=$1 _np=$2 _nd=$3
	shift 3
	me_conf "$_nc" "$work" "inet:$_np@127.0.0.1" "database = \"$_nd\";" \
		"alert_days = [ 30, 7 ];" "sendmail_path = \"$work/slow-sendmail\";" \
		"timestamp_url = \"http://127.0.0.1:$closed/tsa\";" \
		"timestamp_ca_file = \"$pki/ca-bundle.pem\";" "$@"
}
node "$work/a.conf" "$port_a" "$uri"
node "$work/b.conf" "$port_b" "$uri" "temp_dir = \"$work/tmp-b\";"
mkdir -p "$work/tmp-b" && chmod 700 "$work/tmp-b"
me_import "$work/a.conf" "$pki" init andi sekda || bail "init and imports on node A"
for s in soon5 soon20; do
	"$CTL" -c "$work/a.conf" import --mailbox "$s@banjarkota.go.id" \
		--kind individual --cert "$pki/$s.crt.pem" \
		--key "$pki/$s.key.pem" >"$work/out" 2>&1 || bail "import $s"
done
ok "andi, sekda, soon5 and soon20 in PostgreSQL through node A"

# ---- (a) notify on both nodes at once
notify_both() { # notify_both CONF_A CONF_B: both at once, outputs in work
	rm -f "$work/sending"
	"$CTL" -c "$1" notify >"$work/n1.out" 2>&1 &
	_p1=$!
	"$CTL" -c "$2" notify >"$work/n2.out" 2>&1 &
	_p2=$!
	wait $_p1
	r1=$?
	wait $_p2
	r2=$?
}
notify_both "$work/a.conf" "$work/b.conf"
[ "$r1" = 0 ] && [ "$r2" = 0 ]
tap $? "notify on nodes A and B at once: both exit 0 ($r1, $r2)"
c=$(ls "$work/mails" | wc -l)
[ "$c" = 2 ]
tap $? "each alert is sent once: 2 mails, soon5@ and soon20@ ($c)"
w=$(cat "$work/n1.out" "$work/n2.out" | grep -c "^notify: another node is running it; nothing done$")
s=$(cat "$work/n1.out" "$work/n2.out" | grep -c "^2 alerts sent")
[ "$w" = 1 ] && [ "$s" = 1 ]
tap $? "one node sent both, the other said another node runs it ($s, $w)"
[ "$w" = 1 ] || sed 's/^/#   /' "$work/n1.out" "$work/n2.out"
expect 0 "notify again on node B" "$CTL" -c "$work/b.conf" notify
c=$(ls "$work/mails" | wc -l)
[ "$c" = 2 ] && grep -q "0 alerts sent, 2 already sent before" "$work/out"
tap $? "... sends nothing more: alerts_sent is shared ($c mails)"
expect 0 "notify again on node A" "$CTL" -c "$work/a.conf" notify
has "0 alerts sent, 2 already sent before" "... nothing more from A either"

# ---- (a) crl fetch and audit anchor while their lock is held elsewhere
key() { # the advisory lock key of job $1 (lib/db.c db_job_key)
	"$PY" -c 'import sys
h = 14695981039346656037
for c in ("smime-milter job " + sys.argv[1]).encode():
    h = ((h ^ c) * 1099511628211) % 2**64
print(h - 2**64 if h >= 2**63 else h)' "$1"
}
hold() { # hold JOB: psql holds its lock in the background until unhold
	"$PG_BIN/psql" -X -q -At -d "$uri" \
		-c "SELECT pg_advisory_lock($(key "$1"))" -c "SELECT pg_sleep(60)" \
		</dev/null >/dev/null 2>&1 &
	holder=$!
	_hi=0
	while [ "$(pg_psql smime "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")" != 1 ] &&
		[ $_hi -lt 100 ]; do
		sleep 0.1
		_hi=$((_hi + 1))
	done
}
unhold() {
	kill "$holder" 2>/dev/null
	wait "$holder" 2>/dev/null
	holder=
	pg_psql smime "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()" >/dev/null
	sleep 0.3
}
hold notify
expect 0 "notify --dry-run while another node holds the lock" "$CTL" -c "$work/a.conf" notify --dry-run
has "0 alerts shown (dry run), 2 already sent before" "... still shows what it would do"
unhold
hold "crl fetch"
expect 0 "crl fetch while another node holds its lock" "$CTL" -c "$work/a.conf" crl fetch
has "crl fetch: another node is running it; nothing done" "... says so in one line"
l=$(wc -l <"$work/out")
! grep -q "CRL URL" "$work/out" && [ "$l" = 1 ]
tap $? "... and does nothing ($l line)"
unhold
expect 0 "crl fetch with the lock free" "$CTL" -c "$work/a.conf" crl fetch
has "CRL URL" "... runs (its summary line)"

hold "audit anchor"
expect 0 "audit anchor while another node holds its lock" "$CTL" -c "$work/b.conf" audit anchor
has "audit anchor: another node is running it; nothing done" "... says so, without asking the TSA"
unhold
expect 0 "audit anchor with the lock free" "$CTL" -c "$work/b.conf" audit anchor
has "the audit log is empty: nothing to anchor" "... goes on to the audit log"

# a job whose connection drops takes its lock again, or stops
# notify_cut [JOB]: notify on A from scratch; while it sends, its
# connection is cut (and JOB's lock taken by psql); its exit status in r1
notify_cut() {
	pg_psql smime "DELETE FROM alerts_sent" >/dev/null
	rm -f "$work/sending" "$work/mails"/*
	"$CTL" -c "$work/a.conf" notify >"$work/n1.out" 2>&1 &
	_p1=$!
	_ci=0
	while [ ! -e "$work/sending" ] && [ $_ci -lt 100 ]; do
		sleep 0.1
		_ci=$((_ci + 1))
	done
	pg_psql smime "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'" >/dev/null
	[ -z "${1:-}" ] || hold "$1"
	wait $_p1
	r1=$?
}
notify_cut notify
[ "$r1" = 75 ] && grep -q "lock with it: another node may be running the job" "$work/n1.out"
tap $? "notify whose connection dropped while another node took the lock stops (exit $r1)"
grep -q "lock with it" "$work/n1.out" || sed 's/^/#   /' "$work/n1.out"
unhold
notify_cut
c=$(ls "$work/mails" | wc -l)
[ "$r1" = 0 ] && [ "$c" = 2 ] && grep -q "^2 alerts sent" "$work/n1.out"
tap $? "... and goes on when it could take it again (exit $r1, $c mails)"

# ---- (a) SQLite: two notify runs at once on one host
rm -f "$work/mails"/*
node "$work/l1.conf" "$port_a" "$work/smime.db"
node "$work/l2.conf" "$port_b" "$work/smime.db"
me_import "$work/l1.conf" "$pki" init || bail "SQLite init"
for s in soon5 soon20; do
	"$CTL" -c "$work/l1.conf" import --mailbox "$s@banjarkota.go.id" \
		--kind individual --cert "$pki/$s.crt.pem" \
		--key "$pki/$s.key.pem" >"$work/out" 2>&1 || bail "SQLite import $s"
done
notify_both "$work/l1.conf" "$work/l2.conf"
c=$(ls "$work/mails" | wc -l)
w=$(cat "$work/n1.out" "$work/n2.out" | grep -c "^notify: another node is running it; nothing done$")
[ "$r1" = 0 ] && [ "$r2" = 0 ] && [ "$c" = 2 ] && [ "$w" = 1 ]
tap $? "SQLite: two notify runs at once send each alert once ($c mails; $w said another runs it)"
[ "$w" = 1 ] || sed 's/^/#   /' "$work/n1.out" "$work/n2.out"
[ -f "$work/smime.db.notify.lock" ]
tap $? "... the lock is a file beside the database"

# ---- (b) two milters, one database: reload across nodes
printf 'From: Andi <andi@banjarkota.go.id>\r\nTo: x@example.org\r\nSubject: r\r\n\r\nHalo.\r\n' >"$work/m.eml"
signed() { # signed PORT: andi's message is signed there
	rm -f "$work/sig.out"
	"$MILTC" -s "inet:$1@127.0.0.1" -n 1 -o "$work/sig.out" "$work/m.eml" >/dev/null 2>&1
	grep -q '^#ADD Content-Type: multipart/signed' "$work/sig.out" 2>/dev/null
}
me_start "$work/a.conf" "$work/a.log" "$port_a" || bail "milter A"
pa=$ME_PID
me_start "$work/b.conf" "$work/b.log" "$port_b" || bail "milter B"
pb=$ME_PID
me_wait_log "$work/b.log" "reload listener: LISTEN smime_milter_reload"
tap $? "milter B listens on smime_milter_reload"
signed "$port_b"
tap $? "B signs andi's mail"
expect 0 "unmap andi on node A" "$CTL" -c "$work/a.conf" unmap andi@banjarkota.go.id
signed "$port_b"
tap $? "B still signs until it reloads (its snapshot)"
expect 0 "smimectl reload with A's configuration" "$CTL" -c "$work/a.conf" reload
has "asked the milter of every node to reload (NOTIFY smime_milter_reload)" "... notifies every node"
has "asked smime-milter (pid $pa) to reload" "... and signals A through A's pidfile"
me_wait_log "$work/b.log" "reloaded: generation 2"
tap $? "B reloaded without a signal"
grep -q "NOTIFY smime_milter_reload (node=.* pid=$pa at=[0-9.]*): reloading" "$work/b.log"
tap $? "B's log names the notice (node, the pid signalled, the time)"
signed "$port_b"
[ $? != 0 ]
tap $? "B no longer signs for andi: the unmap is used"
me_wait_log "$work/a.log" "signalled already, not reloading twice"
tap $? "A, signalled, does not reload twice for the notice"

# PostgreSQL restarted: B's listener reconnects, said once
pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -m fast \
	-w -t 60 restart </dev/null >/dev/null 2>&1
tap $? "PostgreSQL restarted"
me_wait_log "$work/b.log" "reload listener: connected again" 20
tap $? "B's listener connected again"
sleep 3
l=$(grep -c "reload listener: .*the connection to the database was lost" "$work/b.log")
a=$(grep -c "reload listener: connected again" "$work/b.log")
[ "$l" = 1 ] && [ "$a" = 1 ]
tap $? "... the loss and the return logged once each ($l, $a)"
me_wait_log "$work/b.log" "reloaded: generation 3"
tap $? "... and B reloaded, since a notice may have been missed"
aid=$(pg_psql smime "SELECT id FROM certificates WHERE mailbox = 'andi@banjarkota.go.id' ORDER BY id DESC LIMIT 1")
expect 0 "map andi again on node A" "$CTL" -c "$work/a.conf" map andi@banjarkota.go.id "$aid"
expect 0 "reload with A's configuration" "$CTL" -c "$work/a.conf" reload
me_wait_log "$work/b.log" "reloaded: generation 4"
tap $? "the reload after the restart reaches B"
signed "$port_b"
tap $? "B signs for andi again"
kill -0 "$pb" && kill -0 "$pa"
tap $? "both milters kept running"
cpu=$(ps -o times= -p "$pb" | tr -d ' ')
[ "${cpu:-99}" -lt 10 ]
tap $? "B used little CPU through it all (${cpu}s)"
echo "1..$n"
