#!/bin/sh
# The milter with its keys on a SoftHSM2 token (PKCS#11), driven by
# tests/lib/miltercli.py; every test gets its own token (tests/lib/hsm.sh).
#   (a) andi (token certificate object via id=%01 URI), sekda (--cert),
#       noreply, ec (EC P-256) sign through the token; results verify with
#       openssl and gpgsm (tests/lib/verify.sh)
#   (b) `smime-milter -n` passes; with a mapped key object missing it fails
#       and names the missing key
#   (f) a pin file with mode 0644 is refused with a clear error
#   (c) wrong PIN in the pin file: the milter runs, every message gets
#       tempfail, the log has exactly one "PIN ... rejected" line however many
#       messages; right PIN + reload: signs again
#   (e) a key object deleted from the token, then reload: that mailbox gets
#       tempfail and a "not found" log line, the others still sign
#   (d) token directory moved away while the milter runs: tempfail, one
#       "unavailable" line however many messages and retry periods; moved
#       back: signing resumes within pkcs11_retry (polled up to 15 s) without
#       a restart, one "is back" line, same pid; (d2) the same with the
#       whole SoftHSM tokendir moved away (C_Initialize fails meanwhile)
# Prints TAP.  KEEP=1 keeps the work directory.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
fx_begin hsm
RETRY=2
pid= pid2= moved=
fx_on_exit() {
	me_stop "$pid"
	me_stop "$pid2"
	# a directory moved away by (d) must not survive a failed run
	[ -d "$work/tokdir.away" ] && [ -n "${moved:-}" ] && mv "$work/tokdir.away" "$moved"
}

# ---------------------------------------------------------------- setup
fx_pki || bail "test PKI"
hsm_fixture "$work/hsm" "$pki" || bail "SoftHSM2 token with keys and certificates"
tokdir=$(hsm_token_dir "$HSM_TOKEN")
ok "SoftHSM2 token $HSM_TOKEN in $tokdir with five keys and certificates"

set -- $(me_free_ports 2)
port=$1 port2=$2
conf=$work/m.conf
me_conf "$conf" "$work" "inet:$port@127.0.0.1"
hsm_conf_lines $RETRY >>"$conf"

# ctl DESCRIPTION ARGS...: smimectl -c $conf ARGS must succeed
ctl() {
	_d=$1
	shift
	if "$ME_CTL" -c "$conf" "$@" >"$work/ctl.out" 2>&1; then
		ok "$_d"
		return 0
	fi
	nok "$_d"
	echo "# smimectl -c CONF $*"
	sed 's/^/#   /' "$work/ctl.out" | head -10
	return 1
}
ctl "smimectl init" init || bail "database created"
ctl "import andi, URI with id=%01, certificate from the token" import \
	--mailbox andi@banjarkota.go.id --kind individual \
	--pkcs11-uri "pkcs11:token=$HSM_TOKEN;id=%01;type=private"
ctl "import sekda with --cert" import --mailbox sekda@banjarkota.go.id --kind role \
	--pkcs11-uri "$(hsm_uri "$HSM_TOKEN" sekda)" --cert "$pki/sekda.crt.pem"
ctl "import noreply, certificate from the token" import \
	--mailbox noreply@banjarkota.go.id --kind system \
	--pkcs11-uri "$(hsm_uri "$HSM_TOKEN" noreply)"
ctl "import ec (EC P-256), certificate from the token" import \
	--mailbox ec@banjarkota.go.id --kind individual \
	--pkcs11-uri "$(hsm_uri "$HSM_TOKEN" ec)"

mkdir -p "$work/in" "$work/out"
# mk NAME FROM: a small message in $work/in/NAME.eml
mk() {
	printf '%s\r\n' "From: $2" "To: someone@example.org" "Subject: hsm $1" \
		"Date: Tue, 24 Nov 2026 10:00:00 +0700" "Message-ID: <hsm-$1@banjarkota.go.id>" \
		"MIME-Version: 1.0" "Content-Type: text/plain; charset=utf-8" \
		"Content-Transfer-Encoding: 8bit" "" "Pesan uji HSM – $1" "Salam" >"$work/in/$1.eml"
}
for a in andi sekda noreply ec; do mk "$a" "$a@banjarkota.go.id"; done

# send PORT RESULT MESSAGE[=OUT]...: one connection, one transaction each
send() {
	_p=$1 _r=$2
	shift 2
	"$PY" "$CLI" --socket "inet:$_p@127.0.0.1" --client-ip 127.0.0.1 --timeout 30 "$@" >"$_r" 2>&1
}
# tempfailed RESULT M: message M got a tempfail (result or 4xx reply)
tempfailed() {
	grep -qx "$2.result=tempfail" "$1" || grep -q "^$2\.reply=4[0-9][0-9]" "$1"
}
# signed_ok LABEL RESULT M OUT IN SIGNER
signed_ok() {
	if grep -qx "$3.bodychange=1" "$2" && verify_message "$4" "$5" "$6" "$pki" >"$work/vm.log" 2>&1; then
		ok "$1"
	else
		nok "$1"
		grep "^$3\.\(stage\|result\|reply\|bodychange\)" "$2" | sed 's/^/#   /'
		grep -v '^#   gpgsm' "$work/vm.log" | head -8
	fi
}
# count FILE PATTERN: lines matching the extended regex
count() { grep -cE "$2" "$1" 2>/dev/null; }
# logsince LOG N: the lines after line N
logsince() { tail -n +"$(($2 + 1))" "$1"; }
# wait_reload LOG N: wait up to 10 s for a reload result after line N
wait_reload() {
	_i=0
	while [ $_i -lt 100 ]; do
		logsince "$1" "$2" | grep -qE 'reloaded|reload failed' && return 0
		sleep 0.1
		_i=$((_i + 1))
	done
	return 1
}

# ---------------------------------------------------------------- (b) -n
"$ME_MILTER" -c "$conf" -n >"$work/n.out" 2>&1
rc=$?
tap $rc "(b) smime-milter -n passes with all keys on the token (exit $rc)"
[ $rc = 0 ] || sed 's/^/#   /' "$work/n.out" | head -10

# ---------------------------------------------------------------- (a) signing
me_start "$conf" "$work/milter.log" "$port" || bail "milter started"
pid=$ME_PID
ok "milter started (pid $pid)"
if send "$port" "$work/a.res" "$work/in/andi.eml=$work/out/andi.eml" \
	"$work/in/sekda.eml=$work/out/sekda.eml" "$work/in/noreply.eml=$work/out/noreply.eml" \
	"$work/in/ec.eml=$work/out/ec.eml"; then
	i=0
	for a in andi sekda noreply ec; do
		i=$((i + 1))
		signed_ok "(a) $a@ signed with its key on the token, verifies (openssl, gpgsm)" \
			"$work/a.res" "m$i" "$work/out/$a.eml" "$work/in/$a.eml" "$a@banjarkota.go.id"
	done
else
	nok "(a) signing run completed"
	sed 's/^/#   /' "$work/a.res" | head
fi
# eight messages on four parallel connections: the session pool
pids=
for k in 1 2 3 4; do
	send "$port" "$work/par$k.res" "$work/in/andi.eml=$work/out/par$k-1.eml" \
		"$work/in/ec.eml=$work/out/par$k-2.eml" &
	pids="$pids $!"
done
for p in $pids; do wait "$p"; done
bad=0
for k in 1 2 3 4; do
	grep -qx 'm1.bodychange=1' "$work/par$k.res" && grep -qx 'm2.bodychange=1' "$work/par$k.res" || bad=$((bad + 1))
done
verify_message "$work/out/par4-2.eml" "$work/in/ec.eml" ec@banjarkota.go.id "$pki" >/dev/null 2>&1 || bad=$((bad + 1))
tap $bad "(a) 8 messages on 4 parallel connections all signed ($bad failures)"

# ---------------------------------------------------------------- (f) pin file mode
cp "$HSM_PIN_FILE" "$work/loose.pin"
chmod 0644 "$work/loose.pin"
sed "s|pin_file = \"$HSM_PIN_FILE\"|pin_file = \"$work/loose.pin\"|" "$conf" >"$work/loose.conf"
"$ME_MILTER" -c "$work/loose.conf" -n >"$work/loose.out" 2>&1
rc=$?
if [ $rc -ne 0 ] && grep -q "loose.pin" "$work/loose.out" &&
	grep -qiE 'mode|permission|readable|0644|group|world' "$work/loose.out"; then
	ok "(f) pin file with mode 0644 refused by -n (exit $rc): $(grep -m1 loose.pin "$work/loose.out")"
else
	nok "(f) pin file with mode 0644 refused by -n, naming the file and its mode (exit $rc)"
	sed 's/^/#   /' "$work/loose.out" | head -5
fi
"$ME_CTL" -c "$work/loose.conf" tokens >"$work/loose-ctl.out" 2>&1
rc=$?
if [ $rc -ne 0 ] || grep -q "loose.pin" "$work/loose-ctl.out"; then
	ok "(f) smimectl tokens does not use the 0644 pin file silently (exit $rc)"
else
	nok "(f) smimectl tokens does not use the 0644 pin file silently (exit 0, no word about it)"
	sed 's/^/#   /' "$work/loose-ctl.out" | head -5
fi

# ---------------------------------------------------------------- (c) wrong PIN
mkdir -p "$work/w" "$work/w/keys" "$work/w/tmp"
hsm_pin_file "$work/wrong.pin" "wrong-pin-0000"
sed -e "s|pin_file = \"$HSM_PIN_FILE\"|pin_file = \"$work/wrong.pin\"|" \
	-e "s|inet:$port@|inet:$port2@|" -e "s|$work/tmp|$work/w/tmp|" \
	-e "s|pidfile = .*|pidfile = \"$work/w.pid\";|" "$conf" >"$work/wrong.conf"
chmod 0700 "$work/w/tmp"
"$ME_MILTER" -c "$work/wrong.conf" -n >"$work/wrong-n.out" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q 'PIN' "$work/wrong-n.out"
c=$?
tap $c "(c) -n with a wrong PIN fails and says PIN (exit $rc)"
[ $c = 0 ] || sed 's/^/#   /' "$work/wrong-n.out" | head -5
if me_start "$work/wrong.conf" "$work/wrong.log" "$port2"; then
	pid2=$ME_PID
	ok "(c) milter with a wrong PIN starts (pid $pid2)"
	allt=0
	for k in 1 2 3; do
		send "$port2" "$work/c$k.res" "$work/in/andi.eml" "$work/in/ec.eml"
		tempfailed "$work/c$k.res" m1 && tempfailed "$work/c$k.res" m2 || allt=$((allt + 1))
		sleep 1
	done
	tap $allt "(c) 6 messages on 3 connections over 3 s: each got tempfail ($allt connections not)"
	[ $allt = 0 ] || sed 's/^/#   /' "$work/c3.res" | head
	c=$(count "$work/wrong.log" 'PIN.*rejected|rejected.*PIN')
	tap "$([ "$c" = 1 ]; echo $?)" "(c) exactly one 'PIN ... rejected' log line (found $c)"
	[ "$c" = 1 ] || grep -E 'PIN|rejected' "$work/wrong.log" | head -5 | sed 's/^/#   log: /'
	# right PIN, reload: the PIN is tried again, once, and works
	before=$(wc -l <"$work/wrong.log")
	hsm_pin_file "$work/wrong.pin" "$HSM_PIN"
	kill -USR1 "$pid2"
	wait_reload "$work/wrong.log" "$before"
	send "$port2" "$work/c4.res" "$work/in/andi.eml=$work/out/c4.eml"
	signed_ok "(c) after correcting the PIN file and SIGUSR1: andi@ signed, verifies" \
		"$work/c4.res" m1 "$work/out/c4.eml" "$work/in/andi.eml" andi@banjarkota.go.id
	kill -0 "$pid2" 2>/dev/null
	tap $? "(c) milter with the wrong PIN never exited"
	me_stop "$pid2"
	pid2=
else
	nok "(c) milter with a wrong PIN starts (and tempfails instead of refusing to run)"
fi

# ---------------------------------------------------------------- (e) key deleted
hsm_delete "$HSM_TOKEN" "$HSM_PIN" privkey "$HSM_ID_ec" || bail "ec's private key deleted from the token"
"$ME_MILTER" -c "$conf" -n >"$work/n2.out" 2>&1
rc=$?
if [ $rc -ne 0 ] && grep -q 'not found' "$work/n2.out" && grep -qE 'ec@banjarkota|object=ec|id=%05' "$work/n2.out"; then
	ok "(b) -n fails when ec's key object is missing, names it (exit $rc): $(grep -m1 'not found' "$work/n2.out")"
else
	nok "(b) -n fails when ec's key object is missing, says 'not found' and names ec (exit $rc)"
	sed 's/^/#   /' "$work/n2.out" | head -5
fi
before=$(wc -l <"$work/milter.log")
"$ME_CTL" -c "$conf" reload >"$work/reload.out" 2>&1 || sed 's/^/# reload: /' "$work/reload.out"
wait_reload "$work/milter.log" "$before"
tap $? "(e) milter logged the reload result: $(logsince "$work/milter.log" "$before" | grep -E 'reloaded|reload failed' | head -1)"
send "$port" "$work/e.res" "$work/in/ec.eml" "$work/in/andi.eml=$work/out/e-andi.eml" \
	"$work/in/sekda.eml=$work/out/e-sekda.eml"
tempfailed "$work/e.res" m1
tap $? "(e) ec@ with its key deleted: tempfail"
logsince "$work/milter.log" "$before" | grep -q 'not found'
tap $? "(e) log says 'not found': $(logsince "$work/milter.log" "$before" | grep -m1 'not found')"
signed_ok "(e) andi@ still signed, verifies" "$work/e.res" m2 "$work/out/e-andi.eml" \
	"$work/in/andi.eml" andi@banjarkota.go.id
signed_ok "(e) sekda@ still signed, verifies" "$work/e.res" m3 "$work/out/e-sekda.eml" \
	"$work/in/sekda.eml" sekda@banjarkota.go.id

# ---------------------------------------------------------------- (d) token gone
# outage TAG DIR WHAT: moves DIR away while messages come in, then back
outage() {
	o_tag=$1 o_dir=$2 o_what=$3
	before=$(wc -l <"$work/milter.log")
	mv "$o_dir" "$work/tokdir.away" || bail "$o_tag $o_what moved away"
	moved=$o_dir
	allt=0
	for k in 1 2 3 4 5 6; do
		send "$port" "$work/d$k.res" "$work/in/andi.eml"
		tempfailed "$work/d$k.res" m1 || allt=$((allt + 1))
		sleep 1
	done
	tap $allt "$o_tag $o_what gone: 6 messages over 6 s ($((6 / RETRY)) retry periods) each got tempfail ($allt not)"
	[ $allt = 0 ] || grep '^m1\.' "$work/d6.res" | sed 's/^/#   /'
	c=$(logsince "$work/milter.log" "$before" | grep -c 'unavailable')
	tap "$([ "$c" = 1 ]; echo $?)" "$o_tag exactly one 'unavailable' log line for the event (found $c)"
	[ "$c" = 1 ] || logsince "$work/milter.log" "$before" | grep 'unavailable' | head -5 | sed 's/^/#   log: /'
	mv "$work/tokdir.away" "$o_dir" || bail "$o_tag $o_what moved back"
	moved=
	back=$(date +%s)
	signed=no
	i=0
	while [ $i -lt 15 ]; do
		sleep 1
		i=$((i + 1))
		send "$port" "$work/d-back.res" "$work/in/andi.eml=$work/out/d-back.eml"
		if grep -qx 'm1.bodychange=1' "$work/d-back.res"; then
			signed=yes
			break
		fi
	done
	if [ $signed = yes ]; then
		ok "$o_tag $o_what back: signing resumed without restart after $(($(date +%s) - back)) s (pkcs11_retry = $RETRY)"
		signed_ok "$o_tag first message after the token came back verifies" "$work/d-back.res" m1 \
			"$work/out/d-back.eml" "$work/in/andi.eml" andi@banjarkota.go.id
	else
		nok "$o_tag $o_what back: signing resumed within 15 s without restart"
		grep '^m1\.' "$work/d-back.res" | sed 's/^/#   /'
	fi
	c=$(logsince "$work/milter.log" "$before" | grep -c 'is back')
	tap "$([ "$c" = 1 ]; echo $?)" "$o_tag exactly one 'is back' log line (found $c)"
	send "$port" "$work/d-more.res" "$work/in/sekda.eml=$work/out/d-more.eml"
	signed_ok "$o_tag sekda@ after the token came back: signed, verifies" "$work/d-more.res" m1 \
		"$work/out/d-more.eml" "$work/in/sekda.eml" sekda@banjarkota.go.id
}
# the token's own directory: SoftHSM's C_GetTokenInfo fails until the module
# is finalized and initialized again
outage "(d)" "$tokdir" "token directory"
# all of directories.tokendir: C_Initialize itself fails while it is away
outage "(d2)" "$HSM_DIR/tokens" "whole SoftHSM tokendir"

# ---------------------------------------------------------------- health
if kill -0 "$pid" 2>/dev/null && [ "$(tr -d ' \n' <"$conf.pid" 2>/dev/null)" = "$pid" ]; then
	ok "milter never restarted or crashed (pid $pid, pidfile agrees)"
else
	nok "milter never restarted or crashed (pid $pid)"
	tail -20 "$work/milter.log" | sed 's/^/#   milter: /'
fi
fx_no_sanitizer "no sanitizer report in the milter logs" "$work"/*.log
if grep -qE "$HSM_PIN|wrong-pin-0000" "$work"/*.log "$work"/*.out 2>/dev/null; then
	nok "the PIN never appears in a log or command output"
else
	ok "the PIN never appears in a log or command output"
fi
echo "1..$n"
