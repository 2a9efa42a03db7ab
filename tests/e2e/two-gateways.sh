#!/bin/sh
# Two gateways on one PostgreSQL (issue 16): a private PostgreSQL 15
# (tests/lib/pg.sh), two milters (node A and node B: one database URI, their
# own node_name, port, pidfile, temp_dir and audit spool; one key_dir, as
# the same keys on each node) and a private Postfix in front of each
# (tests/lib/postfix.sh, pf_save/pf_use switching between the two).
#
#   sh tests/e2e/two-gateways.sh        (KEEP=1 keeps the work directory)
#
# In order:
#   node A on SQLite first: a few messages signed and audited there (the
#     database `smimectl migrate` copies at the end);
#   the corpus (tests/data/corpus and mkcorpus.py's good messages) sent
#     half through each node, every delivered copy checked as
#     tests/e2e/postfix.sh does (e2e_check_signed: openssl, gpgsm, ...);
#   a mapping removed and put back with smimectl on node A, then
#     `smimectl reload` with A's configuration: node B, never signalled,
#     follows (its message unsigned, then signed);
#   PostgreSQL stopped in the middle: messages through both nodes are
#     delivered signed while it is down; once it is back every audit row is
#     there (per node) and `smimectl audit verify` passes for each node
#     (with audit_queue_max = 1, so that the rows of the outage go through
#     each node's spool file);
#   `smimectl notify` run on both nodes at once: each alert is sent once;
#   `smimectl migrate --to URI` of node A's SQLite database: the copy
#     passes `audit verify`.
# A feature not in the tree yet (node_name, the audit spool, reload by
# NOTIFY and the job locks, migrate) makes its checks TAP SKIPs that name it.
# Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
. "$TOP/tests/lib/e2e.sh"
. "$TOP/tests/lib/pg.sh"
e2e_begin gw2
EXPECT_OUT=$work/expect.out # $work/out holds the delivered copies
pid_a= pid_b= pid_s=
fx_on_exit() {
	me_stop "$pid_s" 30
	me_stop "$pid_a" 30
	me_stop "$pid_b" 30
	for _x in a b; do
		pf_use $_x
		pf_stop
	done
	pg_stop
}

# skip TEXT REASON [N]: N (1) checks not made, TAP SKIPs naming what is missing
skip() {
	for _sk in $(seq 1 "${3:-1}"); do ok "$1 # SKIP $2"; done
}

# knows KEY VALUE: 0 when the configuration takes KEY (no "unknown key")
knows() {
	me_conf "$work/probe.conf" "$work" "inet:1@127.0.0.1" \
		"database = \"$work/probe.db\";" "$1 = $2;"
	! "$CTL" -c "$work/probe.conf" list 2>&1 | grep -q "unknown key '$1'"
}

# ---------------------------------------------------------------- setup
e2e_pki
e2e_corpus
pg_start "$work" || bail "a private PostgreSQL 15"
ok "a private PostgreSQL on a unix socket in $PG_DIR"
pg_createdb smime || bail "CREATE DATABASE smime"
uri=$(pg_uri smime)

has_node=yes has_spool=yes has_jobs=yes has_migrate=yes
knows node_name '"x"' || has_node="node_name is not a configuration key (branch node)"
knows audit_spool "\"$work/x.spool\"" || has_spool="audit_spool is not a configuration key (branch spool)"
{ grep -aq 'asked the milter of every node' "$CTL" && grep -aq 'reload listener' "$MILTER"; } ||
	has_jobs="no reload by NOTIFY in smimectl and the milter (branch jobs)"
"$CTL" 2>&1 | grep -q '^  migrate ' || has_migrate="command smimectl migrate absent (branch migrate)"
for f in node spool jobs migrate; do
	eval "echo \"# feature $f: \$has_$f\""
done

set -- $(pf_free_ports 6)
m_a=$1 s_a=$2 k_a=$3 m_b=$4 s_b=$5 k_b=$6
for x in a b; do
	mkdir -p "$work/pf-$x" "$work/tmp-$x"
	chmod 0700 "$work/tmp-$x"
	PF_EXTRA_MAIN=
	eval "pf_start \"\$work/pf-$x\" \"\$s_$x\" \"\$k_$x\" \"inet:\$m_$x@127.0.0.1\"" ||
		bail "private Postfix of node $x started"
	pf_save $x
	# smimectl notify on node x hands its alerts to node x's Postfix
	printf '#!/bin/sh\nMAIL_CONFIG=%s exec /usr/sbin/sendmail -C %s "$@"\n' \
		"$PF_CONF" "$PF_CONF" >"$work/sendmail-$x"
	chmod 755 "$work/sendmail-$x"
done
ok "two private Postfix instances (smtpd $s_a and $s_b, sinks $k_a and $k_b)"

# nodeconf X DATABASE FILE [EXTRA...]: node X's milter configuration
nodeconf() {
	_nx=$1 _nd=$2 _nf=$3
	shift 3
	eval "_np=\$m_$_nx"
	set -- "database = \"$_nd\";" "temp_dir = \"$work/tmp-$_nx\";" \
		"sendmail_path = \"$work/sendmail-$_nx\";" 'op_admin = "op@banjarkota.go.id";' "$@"
	[ "$has_node" = yes ] && set -- "$@" "node_name = \"gw-$_nx\";"
	[ "$has_spool" = yes ] && set -- "$@" 'audit_queue_max = 1;' \
		"audit_spool = \"$work/$(basename "$_nf" .conf).spool\";"
	me_conf "$_nf" "$work" "inet:$_np@127.0.0.1" "$@"
}
conf_s=$work/s.conf conf_a=$work/a.conf conf_b=$work/b.conf
nodeconf a "$work/sqlite.db" "$conf_s" "key_dir = \"$work/keys-s\";"
nodeconf a "$uri" "$conf_a"
nodeconf b "$uri" "$conf_b"

# send NODE TAG FILE: through NODE's Postfix; counts what NODE's Postfix
# relayed (rel_NODE) and NODE's milter audited (cnt_NODE), lists the tags
cnt_a=0 cnt_b=0 rel_a=0 rel_b=0 tags_a= tags_b=
send() {
	eval "_sp=\$s_$1"
	if e2e_send "$2" "$3" "$_sp" "$(e2e_mode "$2")"; then
		eval "cnt_$1=\$((cnt_$1 + 1)) rel_$1=\$((rel_$1 + 1)); tags_$1=\"\$tags_$1 $2\""
		ok "$2: accepted by node $1's Postfix"
	else
		nok "$2: accepted by node $1's Postfix"
	fi
}
# delivered NODE: every message sent through NODE is in its sink
delivered() {
	pf_use "$1"
	eval "_dn=\$rel_$1"
	pf_wait_delivered "$_dn" 120
	tap $? "node $1: all $_dn messages sent through it so far delivered${2:+ ($2)}"
}
# signed NODE TAG...: e2e_check_signed for each TAG sent through NODE
signed() {
	pf_use "$1"
	shift
	for _st; do
		e2e_check_signed "$_st" "$("$PY" "$SC" from-addr "$work/send/$_st.eml")"
	done
}
# started X CONF LOG: node X's milter (s: node A's on SQLite)
started() {
	_sx=$1
	[ "$_sx" = s ] && _sx=a
	eval "_mp=\$m_$_sx"
	me_start "$2" "$3" "$_mp" || bail "node $1's milter on $2"
	eval "pid_$1=\$ME_PID"
	ok "node $1's milter listens on $_mp ($(basename "$2"))"
}
set -- $good
t1=$1 t2=$2 t3=$3

# ---------------------------------------------------------------- A on SQLite
me_import "$conf_s" "$pki" init andi sekda noreply legacy ec || bail "SQLite database of node A"
ok "node A's first database: SQLite, five mailboxes"
started s "$conf_s" "$work/milter-s.log"
for t in $t1 $t2 $t3; do send a "sq-$t" "$(e2e_src "$t")"; done
delivered a "on SQLite"
signed a $tags_a
me_stop "$pid_s" 30 # the audit queue is written at shutdown
pid_s=
expect 0 "audit verify on node A's SQLite database" "$CTL" -c "$conf_s" audit verify
has "audit log OK" "... the chain is whole"
db=$work/sqlite.db
q_is "$cnt_a" "... and holds the $cnt_a rows" "SELECT count(*) FROM audit"
sq_done=$cnt_a cnt_a=0 tags_a=

# ---------------------------------------------------------------- both on PostgreSQL
conf=$conf_a
e2e_import
started a "$conf_a" "$work/milter.log"
started b "$conf_b" "$work/milter-b.log"
i=0
for t in $good; do
	if [ $((i % 2)) = 0 ]; then send a "$t" "$(e2e_src "$t")"; else send b "$t" "$(e2e_src "$t")"; fi
	i=$((i + 1))
done
delivered a "half the corpus"
delivered b "the other half"
signed a $tags_a
signed b $tags_b

# ---------------------------------------------------------------- reload on A reaches B
# reloaded: how many snapshots node B built since it started
reloaded() { grep -c 'reloaded: generation' "$work/milter-b.log"; }
# wait_reload N: node B built a snapshot past the N-th
wait_reload() {
	_wr=0
	while [ "$(reloaded)" -le "$1" ] && [ $_wr -lt 100 ]; do sleep 0.1; _wr=$((_wr + 1)); done
	[ "$(reloaded)" -gt "$1" ]
}
printf '%s\r\n' "From: Legacy <legacy@banjarkota.go.id>" "To: partner@example.org" \
	"Subject: after a reload on node A" "Date: Tue, 24 Nov 2026 13:00:00 +0700" \
	"Message-ID: <reload-1@banjarkota.go.id>" "MIME-Version: 1.0" \
	"Content-Type: text/plain; charset=utf-8" "" "Mapping changed on node A." >"$work/legacy.eml"
if [ "$has_jobs" = yes ]; then
	lid=$(pg_psql smime "SELECT cert_id FROM mailboxes WHERE address = 'legacy@banjarkota.go.id'")
	me_wait_log "$work/milter-b.log" 'reload listener: LISTEN' 10
	tap $? "node B listens for reloads on PostgreSQL"
	r0=$(reloaded)
	ctl "unmap legacy on node A" unmap legacy@banjarkota.go.id
	ctl "smimectl reload with node A's configuration" reload
	wait_reload "$r0"
	tap $? "node B built a new snapshot ($(reloaded) after $r0)"
	send b reload-unmapped "$work/legacy.eml"
	r1=$(reloaded)
	ctl "map legacy again on node A" map legacy@banjarkota.go.id "$lid"
	ctl "smimectl reload with node A's configuration again" reload
	wait_reload "$r1"
	tap $? "node B built a new snapshot again ($(reloaded) after $r1)"
	send b reload-mapped "$work/legacy.eml"
	nb=$(grep -c 'NOTIFY .*: reloading' "$work/milter-b.log")
	[ "$nb" = 2 ]
	tap $? "node B reloaded twice, each time on the NOTIFY (its log: $nb)"
	delivered b "after the reloads"
	pf_use b
	e2e_check_untouched reload-unmapped
	signed b reload-mapped
else
	for d in "node B listens for reloads on PostgreSQL" "unmap legacy on node A" \
		"smimectl reload on node A" "node B built a new snapshot" "node B's message from legacy accepted" "map legacy again on node A" \
		"smimectl reload on node A again" "node B built a new snapshot again" \
		"node B's second message from legacy accepted" "node B reloaded twice on the NOTIFY" \
		"node B: delivered after the reloads" "reload-unmapped: delivered" \
		"reload-unmapped: not signed" "reload-unmapped: arrived untouched"; do
		skip "$d" "$has_jobs"
	done
	skip "reload-mapped: delivered and signed" "$has_jobs" 8
fi

# ---------------------------------------------------------------- PostgreSQL away
pg_halt || bail "PostgreSQL stopped"
ok "PostgreSQL stopped in the middle of the run"
for t in $t1 $t2; do send a "down-$t" "$(e2e_src "$t")"; done
for t in $t2 $t3; do send b "down-$t" "$(e2e_src "$t")"; done
delivered a "while PostgreSQL is down"
delivered b "while PostgreSQL is down"
signed a "down-$t1" "down-$t2"
signed b "down-$t2" "down-$t3"
pg_resume || bail "PostgreSQL started again"
ok "PostgreSQL started again"
for t in $t3; do send a "up-$t" "$(e2e_src "$t")"; done
for t in $t1; do send b "up-$t" "$(e2e_src "$t")"; done
delivered a "after the restart"
delivered b "after the restart"
signed a "up-$t3"
signed b "up-$t1"

# audit_rows [WHERE]: the audit rows in PostgreSQL ("?" when unreachable)
audit_rows() { pg_psql smime "SELECT count(*) FROM audit ${1:-}" 2>/dev/null || echo '?'; }
want=$((cnt_a + cnt_b))
w=0
while [ "$(audit_rows)" != "$want" ] && [ $w -lt 150 ]; do sleep 0.2; w=$((w + 1)); done
got=$(audit_rows)
[ "$got" = "$want" ]
tap $? "every audit row is in PostgreSQL after the restart ($got of $want)"
for x in a b; do
	lx=$work/milter.log
	[ $x = b ] && lx=$work/milter-b.log
	if [ "$has_spool" = yes ]; then
		w=0 # removed right after the rows' transaction committed
		while [ -e "$work/$x.spool" ] && [ $w -lt 50 ]; do sleep 0.1; w=$((w + 1)); done
		grep -q "spooling audit rows to $work/$x.spool" "$lx" && [ ! -e "$work/$x.spool" ]
		tap $? "node $x: the outage's rows went through its spool file, removed once written"
	else
		skip "node $x: the outage's rows went through its spool file" "$has_spool"
	fi
done
if [ "$has_node" = yes ]; then
	for x in a b; do
		eval "wx=\$cnt_$x"
		gx=$(audit_rows "WHERE node = 'gw-$x'")
		[ "$gx" = "$wx" ]
		tap $? "node $x: its $wx audit rows are there ($gx)"
		expect 0 "audit verify --node gw-$x" "$CTL" -c "$conf_a" audit verify --node "gw-$x"
		has "node \"gw-$x\": audit log OK: $wx rows" "... node gw-$x's chain: $wx rows, OK"
	done
	expect 0 "audit verify (every node's chain)" "$CTL" -c "$conf_b" audit verify
	grep -q '^node "gw-a": audit log OK' "$EXPECT_OUT" && grep -q '^node "gw-b": audit log OK' "$EXPECT_OUT"
	tap $? "... both chains OK"
else
	for x in a b; do
		for d in "node $x: its audit rows are there" "audit verify --node gw-$x" \
			"... node gw-$x's chain OK"; do
			skip "$d" "$has_node"
		done
	done
	skip "audit verify (every node's chain)" "$has_node"
	skip "... both chains OK" "$has_node"
fi

# ---------------------------------------------------------------- notify on both nodes
# alerts: the renewal alerts in both sinks
alerts() {
	for _x in a b; do
		pf_use $_x
		pf_sink_files | xargs -r grep -l '^Subject: \[Sertifikat Elektronik\]'
	done | wc -l
}
if [ "$has_jobs" = yes ]; then
	for c in lurah:7010 camat:7011; do
		nm=${c%:*}
		fx_issue "$nm" "$pki" "${c#*:}" 10 "/CN=Test $nm" "$nm@banjarkota.go.id" ||
			bail "a certificate for $nm expiring in 10 days"
		ctl "import $nm (expires in 10 days)" import --mailbox "$nm@banjarkota.go.id" --kind role \
			--cert "$pki/$nm.crt.pem" --key "$pki/$nm.key.pem" --owner "Test $nm" \
			--contact "sekretariat.$nm@banjarkota.go.id"
	done
	"$CTL" -c "$conf_a" notify >"$work/notify-a.out" 2>&1 &
	na=$!
	"$CTL" -c "$conf_b" notify >"$work/notify-b.out" 2>&1
	rb=$?
	wait "$na"
	ra=$?
	[ "$ra" = 0 ] && [ "$rb" = 0 ]
	tap $? "smimectl notify on both nodes at once (exit $ra, $rb)"
	sed 's/^/#   notify: /' "$work/notify-a.out" "$work/notify-b.out"
	w=0
	while [ "$(alerts)" -lt 2 ] && [ $w -lt 100 ]; do sleep 0.3; w=$((w + 1)); done
	sleep 3 # a second copy would come as fast as the first
	c=$(alerts)
	[ "$c" = 2 ]
	tap $? "each of the two alerts sent once ($c in the sinks)"
	"$CTL" -c "$conf_b" notify >"$EXPECT_OUT" 2>&1
	has "0 alerts sent, 2 already sent before" "notify on node B again sends nothing"
else
	for d in "import lurah" "import camat" "smimectl notify on both nodes at once" \
		"each of the two alerts sent once" "notify on node B again sends nothing"; do
		skip "$d" "$has_jobs"
	done
fi

# ---------------------------------------------------------------- migrate node A's SQLite
if [ "$has_migrate" = yes ]; then
	pg_createdb copy || bail "CREATE DATABASE copy"
	expect 0 "smimectl migrate --to URI from node A's SQLite database" \
		"$CTL" -c "$conf_s" migrate --to "$(pg_uri copy)"
	nodeconf a "$(pg_uri copy)" "$work/copy.conf" "key_dir = \"$work/keys-s\";"
	expect 0 "audit verify on the copy" "$CTL" -c "$work/copy.conf" audit verify
	has "audit log OK: $sq_done rows" "... the $sq_done rows of the SQLite run"
	c=$(pg_psql copy "SELECT count(*) FROM mailboxes")
	[ "$c" = 5 ]
	tap $? "the copy has the five mailboxes ($c)"
else
	for d in "smimectl migrate --to URI" "audit verify on the copy" "... the rows of the SQLite run" \
		"the copy has the five mailboxes"; do
		skip "$d" "$has_migrate"
	done
fi

# ---------------------------------------------------------------- health
for x in a b; do
	eval "p=\$pid_$x"
	kill -0 "$p" 2>/dev/null
	tap $? "node $x's milter still running (pid $p)"
	left=$(find "$work/tmp-$x" -type f | wc -l)
	tap "$([ "$left" = 0 ]; echo $?)" "node $x: no temp file left ($left)"
done
fx_no_sanitizer "no sanitizer report in the milter logs" "$work/milter.log" \
	"$work/milter-b.log" "$work/milter-s.log"
echo "1..$n"
