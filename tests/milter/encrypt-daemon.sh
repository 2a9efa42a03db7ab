#!/bin/sh
# Encryption (issue 5) through the daemon (tests/lib/miltercli.py over the
# milter protocol), and harvesting of partner certificates.  The openssl CLI
# is the independent decrypter and verifier.  The offline checks (-t) are
# tests/milter/encrypt.sh; what both share is tests/lib/encrypt.sh.
#
#   (9) RCPT negotiated only with encrypt rules; 550 5.7.1 at RCPT for a
#       required recipient without certificate while the others go on;
#       inbound mail is not subject to the rules; senders-limited rules at
#       RCPT; whole-message refusal at end of headers; a large message
#  (10) harvesting: learns a partner's certificate from signed inbound mail
#       once, uses it at once; negatives; harvest = false learns nothing.
#       Inbound signed mail is stamped (one Authentication-Results field
#       with the smime verdict; the body stays as it is)
#  (11) the milters kept running; no temp file left behind
# Prints TAP.  KEEP=1 keeps the work directory.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
. "$TOP/tests/lib/encrypt.sh"
t0=$(date +%s)
enc_begin encd
pid_e='' pid_p='' pid_n=''
fx_on_exit() {
	me_stop "$pid_e"
	me_stop "$pid_p"
	me_stop "$pid_n"
}
enc_partners || bail "smimectl recipient import of mitra@ (RSA) and ecmitra@ (EC) partner certificates"
# databases for the daemons: the state after the setup (in encrypt.sh the
# offline checks that follow it change the recipients)
for d in d1 d2; do
	"$PY" -c 'import sqlite3, sys
s = sqlite3.connect(sys.argv[1]); d = sqlite3.connect(sys.argv[2])
s.backup(d); d.close(); s.close()' "$work/smime.db" "$work/$d.db" ||
		bail "database copy $d.db"
done
# certificates that encrypt.sh makes in its (7): fremd@ (not under
# ca_file) and mitra@'s second one (3A01), to sign inbound mail with
enc_fremd || bail "self-signed certificate of fremd@jabarprov.go.id made"
enc_mitra2 || bail "a second, newer certificate for mitra@ (new key, serial 3A01) made"

# ================================================================ daemon
set -- $(me_free_ports 3)
port_e=$1 port_p=$2 port_n=$3
CPORT=$port_e conf denc "database = \"$work/d1.db\";" 'harvest = true;' <<'EOF'
encrypt = (
  { recipients = [ "jabarprov.go.id" ]; mode = "opportunistic"; },
  { recipients = [ "bpk.go.id" ]; mode = "required"; },
  { recipients = [ "example.org" ]; senders = [ "sekda@banjarkota.go.id" ];
    mode = "required"; }
);
EOF
DBPK=$(grep -n '"bpk.go.id"' "$work/denc.conf" | cut -d: -f1)
CPORT=$port_p conf dplain "database = \"$work/d2.db\";" </dev/null
CPORT=$port_n conf dnoh "database = \"$work/d2.db\";" 'harvest = false;' <<'EOF'
encrypt = ( { recipients = [ "bpk.go.id" ]; mode = "required"; } );
EOF
me_start "$work/denc.conf" "$work/denc.log" "$port_e" || bail "milter with encrypt rules and harvest = true started"
pid_e=$ME_PID
me_start "$work/dplain.conf" "$work/dplain.log" "$port_p" || bail "milter without encrypt rules started"
pid_p=$ME_PID
me_start "$work/dnoh.conf" "$work/dnoh.log" "$port_n" || bail "milter with harvest = false started"
pid_n=$ME_PID
ok "three milters started (rules + harvest on $port_e, no rules on $port_p, harvest = false on $port_n)"
E="--socket inet:$port_e@127.0.0.1"

# run NAME ARGS...: miltercli; result lines in $out/NAME.res
run() {
	_n=$1
	shift
	"$PY" "$CLI" "$@" >"$out/$_n.res" 2>&1 && return 0
	echo "# miltercli failed:"
	sed 's/^/#   /' "$out/$_n.res"
	return 1
}
has() { grep -qxF "$2" "$out/$1.res"; }
showres() { sed 's/^/#   res: /' "$out/$1.res"; }
proto() { sed -n 's/^negotiated.protocol=//p' "$out/$1.res"; }
# stamped NAME RESULT: the inbound message went on with its body as it was
# and one header edit, our Authentication-Results with smime=RESULT
stamped() {
	has "$1" "m1.bodychange=0" && has "$1" "m1.result=continue" &&
		[ "$(grep -c '^m1\.\(hdr\|other\)' "$out/$1.res")" = 1 ] &&
		grep -q "^m1\.hdradd=Authentication-Results: [^;]*; smime=$2 " "$out/$1.res"
}

# ================================================================ (9)
run d9a $E --qid ENC9A --rcpt auditor@bpk.go.id --rcpt mitra@jabarprov.go.id \
	"$in/plain.eml=$out/d9a.eml"
p=$(proto d9a)
[ -n "$p" ] && [ $((p & 0x8)) = 0 ] && [ $((p & 0x8000)) = 0 ]
tap $? "(9) with encrypt rules RCPT is negotiated with a reply (NORCPT and NR_RCPT clear: $p)"
has d9a "m1.rcpt1=auditor@bpk.go.id replycode" &&
	has d9a "m1.reply=550 5.7.1 encryption to auditor@bpk.go.id is required (policy rule at $work/denc.conf:$DBPK), but no valid certificate of auditor@bpk.go.id is known"
tap $? "(9) auditor@ (required, no certificate) gets 550 5.7.1 at RCPT naming the rule (denc.conf:$DBPK)" || showres d9a
has d9a "m1.rcpt2=mitra@jabarprov.go.id accepted" && has d9a "m1.stage=eom" &&
	has d9a "m1.result=continue" && has d9a "m1.bodychange=1"
tap $? "(9) mitra@ accepted at RCPT, the message goes on and its body is replaced" || showres d9a
check_enc "(9) via the protocol" "$in/plain.eml" "$out/d9a.eml" enveloped andi@banjarkota.go.id "andi mitra"
grep -qF "ENC9A: recipient <auditor@bpk.go.id> refused: encryption to auditor@bpk.go.id is required (policy rule at $work/denc.conf:$DBPK), but no valid certificate of auditor@bpk.go.id is known" "$work/denc.log" &&
	grep -qF "ENC9A: signed for andi@banjarkota.go.id with certificate $ANDI and encrypted (aes-256-cbc, 2 certificates)" "$work/denc.log"
tap $? "(9) log: the refused recipient, then signed and encrypted (2 certificates)" || tail -5 "$work/denc.log" | sed 's/^/#   /'
run d9b --socket "inet:$port_p@127.0.0.1" --rcpt auditor@bpk.go.id "$in/plain.eml"
p=$(proto d9b)
[ -n "$p" ] && [ $((p & 0x8)) = 0 ] && [ $((p & 0x8000)) != 0 ] && has d9b "m1.rcpt1=auditor@bpk.go.id accepted"
tap $? "(9) without encrypt rules RCPT is sent without a reply (NORCPT clear, NR_RCPT set: $p; the inbound path needs the recipients)" || showres d9b
run d9p $E --rcpt 'kasubag%keu@bpk.go.id' "$in/plain.eml"
has d9p "m1.rcpt1=kasubag%keu@bpk.go.id replycode" &&
	grep -qF "m1.reply=550 5.7.1 encryption to kasubag%%keu@bpk.go.id is required" "$out/d9p.res"
tap $? "(9) a '%' in the refused address is doubled in the reply text (the MTA reads it as a format)" || showres d9p
run d9c $E --client-ip 192.0.2.1 --rcpt pemeriksa@bpk.go.id "$in/foreign.eml"
has d9c "m1.rcpt1=pemeriksa@bpk.go.id accepted" && has d9c "m1.bodychange=0" && has d9c "m1.result=accept"
tap $? "(9) inbound mail (client 192.0.2.1) to a required address is not refused nor touched" || showres d9c
run d9d $E --qid ENC9D --rcpt mitra@jabarprov.go.id --rcpt tanpa@jabarprov.go.id "$in/plain.eml=$out/d9d.eml"
has d9d "m1.rcpt2=tanpa@jabarprov.go.id accepted" && has d9d "m1.result=continue"
tap $? "(9) opportunistic: mitra@ and tanpa@ (no certificate) both accepted at RCPT" || showres d9d
check_signed_only "(9) opportunistic with tanpa@ lacking a certificate" "$out/d9d.eml"
grep -qF "ENC9D: signed for andi@banjarkota.go.id with certificate $ANDI, not encrypted (opportunistic): no valid certificate for tanpa@jabarprov.go.id" "$work/denc.log"
tap $? "(9) ... log: not encrypted (opportunistic), naming tanpa@" || tail -3 "$work/denc.log" | sed 's/^/#   /'
run d9e $E --mail-from sekda@banjarkota.go.id --rcpt x@example.org --rcpt mitra@jabarprov.go.id \
	"$in/sekda.eml=$out/d9e.eml"
has d9e "m1.rcpt1=x@example.org replycode" && has d9e "m1.rcpt2=mitra@jabarprov.go.id accepted" &&
	[ "$(rserials "$out/d9e.eml")" = "$(wserials mitra sekda)" ] && dec "$out/d9e.eml" sekda
tap $? "(9) senders-limited rule at RCPT: MAIL FROM sekda@ refuses x@example.org, encrypts to mitra@ + sekda@" || showres d9e
run d9f $E --rcpt x@example.org --rcpt mitra@jabarprov.go.id "$in/plain.eml=$out/d9f.eml"
has d9f "m1.rcpt1=x@example.org accepted"
tap $? "(9) ... from andi@ the senders-limited rule does not apply: x@example.org accepted" || showres d9f
check_signed_only "(9) ... and the message leaves signed only" "$out/d9f.eml"
# large message, spilled to temp_dir, encrypted in a stream
H big "$in/big.eml" "Andi <andi@banjarkota.go.id>" "mitra@jabarprov.go.id" 24000
run d9g $E --qid ENC9G --rcpt mitra@jabarprov.go.id "$in/big.eml=$out/d9g.eml" &&
	has d9g "m1.result=continue" && dec "$out/d9g.eml" mitra &&
	H rebuild "$out/d9g.eml" "$out/d9g.eml.dec.mitra" "$out/d9g.inner" &&
	openssl smime -verify -in "$out/d9g.inner" -CAfile "$pki/ca-bundle.pem" -out /dev/null >/dev/null 2>&1 &&
	"$PY" "$SC" content "$in/big.eml" "$out/d9g.inner" >"$out/d9g.cmp" 2>&1
tap $? "(9) a $(($(wc -c <"$in/big.eml") / 1024)) KiB message (spooled to disk) is encrypted, decrypts, verifies, same content" ||
	{ showres d9g; sed 's/^/#   /' "$out/d9g.cmp" 2>/dev/null | head -5; }

# ================================================================ (10)
printf 'Content-Type: text/plain; charset=us-ascii\r\n\r\nLaporan hasil pemeriksaan.\r\n' >"$work/hb.txt"
inb() { # inb NAME SIGNER FROM [opaque]
	sign_as "$2" "$3" "andi@banjarkota.go.id" "harvest $1" "$work/hb.txt" "$in/$1.eml" "${4:-}"
}
harvested() { grep -c "harvested certificate .* for $1 " "$2"; }
rcount() { # rcount CONF ADDR: stored recipient rows of ADDR
	"$ME_CTL" -c "$1" recipient list --address "$2" --json 2>/dev/null | grep -c '"address"'
}
# negatives first
inb hsignonly signonly signonly@jabarprov.go.id
inb htamper auditor auditor@bpk.go.id
sed 's/^Laporan hasil pemeriksaan\./Laporan hasil pemeriksaan (diubah)./' "$in/htamper.eml" >"$in/htamper2.eml"
inb hmismatch auditor kepala@bpk.go.id
inb hrevoked revmitra revmitra@jabarprov.go.id
sign_as fremd "fremd@jabarprov.go.id" "andi@banjarkota.go.id" "harvest fremd" "$work/hb.txt" "$in/hfremd.eml"
inb hout auditor auditor@bpk.go.id
"$ME_CTL" -c "$work/denc.conf" crl import "$pki/crl.pem" >/dev/null 2>&1
cmp -s "$in/htamper.eml" "$in/htamper2.eml" && echo "# the tampered message is not changed"
for h in "hsignonly:pass:signonly@jabarprov.go.id:signed by a certificate without encryption usage" \
	"htamper2:fail:auditor@bpk.go.id:signed by auditor@, body changed after signing" \
	"hmismatch:fail:kepala@bpk.go.id:signed by auditor@, From kepala@bpk.go.id" \
	"hrevoked:fail:revmitra@jabarprov.go.id:signer listed in the imported CRL" \
	"hfremd:fail:fremd@jabarprov.go.id:signer not under ca_file"; do
	nm=${h%%:*} rest=${h#*:}
	res=${rest%%:*} rest=${rest#*:}
	addr=${rest%%:*} why=${rest#*:}
	run "$nm" $E --client-ip 192.0.2.1 --rcpt andi@banjarkota.go.id "$in/$nm.eml" &&
		stamped "$nm" "$res"
	tap $? "(10) inbound, $why: body untouched, stamped smime=$res" || showres "$nm"
	[ "$(harvested "$addr" "$work/denc.log")" = 0 ] && [ "$(rcount "$work/denc.conf" "$addr")" = 0 ] &&
		[ "$(harvested "auditor@bpk.go.id" "$work/denc.log")" = 0 ]
	tap $? "(10) ... not harvested ($addr not stored, nothing logged)"
done
run hout $E --client-ip 127.0.0.1 --rcpt andi@banjarkota.go.id "$in/hout.eml" &&
	[ "$(harvested "auditor@bpk.go.id" "$work/denc.log")" = 0 ] &&
	[ "$(rcount "$work/denc.conf" auditor@bpk.go.id)" = 0 ]
tap $? "(10) the same auditor@-signed message from an internal client (outbound) is not harvested" || showres hout
run d10pre $E --rcpt auditor@bpk.go.id "$in/toaud.eml"
has d10pre "m1.rcpt1=auditor@bpk.go.id replycode"
tap $? "(10) before harvesting, outbound mail to auditor@ (required) is refused at RCPT" || showres d10pre
# the real thing, twice (two connections)
inb haud auditor auditor@bpk.go.id
run haud1 $E --client-ip 192.0.2.1 --qid HARV1 --rcpt andi@banjarkota.go.id "$in/haud.eml" &&
	run haud2 $E --client-ip 192.0.2.1 --qid HARV2 --rcpt andi@banjarkota.go.id "$in/haud.eml"
stamped haud1 pass && stamped haud2 pass
tap $? "(10) auditor@'s signed inbound messages: body untouched, stamped smime=pass" || { showres haud1; showres haud2; }
AUD=$(hserial "$pki/auditor.crt.pem")
[ "$(harvested auditor@bpk.go.id "$work/denc.log")" = 1 ] &&
	grep -qF "HARV1: harvested certificate $AUD for auditor@bpk.go.id (signed mail from 192.0.2.1)" "$work/denc.log"
tap $? "(10) exactly one log line: HARV1: harvested certificate $AUD for auditor@bpk.go.id (signed mail from 192.0.2.1)" ||
	grep harvest "$work/denc.log" | sed 's/^/#   /'
"$ME_CTL" -c "$work/denc.conf" recipient list --address auditor@bpk.go.id >"$out/hlist" 2>&1
[ "$(grep -c 'auditor@bpk.go.id' "$out/hlist")" = 1 ] &&
	grep -q "auditor@bpk.go.id  *$AUD .* active  *harvest " "$out/hlist"
tap $? "(10) smimectl recipient list: auditor@ once, source harvest" || sed 's/^/#   /' "$out/hlist"
run d10post $E --qid AFTER --rcpt auditor@bpk.go.id "$in/toaud.eml=$out/d10post.eml"
has d10post "m1.rcpt1=auditor@bpk.go.id accepted" && has d10post "m1.result=continue"
tap $? "(10) the next outbound message to auditor@ (required) is accepted at RCPT, no reload" || showres d10post
check_enc "(10) encrypted with the harvested certificate" "$in/toaud.eml" "$out/d10post.eml" \
	enveloped andi@banjarkota.go.id "andi auditor"
! grep -q "reload" "$work/denc.log"
tap $? "(10) no reload happened in between"
# the untampered twin of the tampered message: not logged again
run htamper $E --client-ip 192.0.2.1 --rcpt andi@banjarkota.go.id "$in/htamper.eml" &&
	stamped htamper pass && [ "$(harvested auditor@bpk.go.id "$work/denc.log")" = 1 ]
tap $? "(10) the intact twin of the tampered message: smime=pass, the certificate is not logged again" || showres htamper
inb hopaque mitra2 mitra@jabarprov.go.id opaque
run hopaque $E --client-ip 192.0.2.1 --rcpt andi@banjarkota.go.id "$in/hopaque.eml" &&
	[ "$(harvested mitra@jabarprov.go.id "$work/denc.log")" = 1 ] &&
	grep -qF "harvested certificate 3A01 for mitra@jabarprov.go.id" "$work/denc.log"
tap $? "(10) an opaque-signed message (pkcs7-mime signed-data) with mitra@'s new certificate is harvested" || showres hopaque
run d10m $E --rcpt mitra@jabarprov.go.id "$in/plain.eml=$out/d10m.eml" &&
	[ "$(rserials "$out/d10m.eml")" = "$(wserials andi mitra2)" ]
tap $? "(10) ... and used at once: the newer harvested certificate beats the older imported one"
# a reload keeps what was harvested (it is in the database), and the
# certificate is not logged again afterwards
"$ME_CTL" -c "$work/denc.conf" reload >"$out/reload.out" 2>&1
me_wait_log "$work/denc.log" "reloaded: generation"
tap $? "(10) smimectl reload: the milter reloads" || sed 's/^/#   /' "$out/reload.out"
run d10r $E --rcpt auditor@bpk.go.id --rcpt mitra@jabarprov.go.id "$in/toaud.eml=$out/d10r.eml" &&
	has d10r "m1.rcpt1=auditor@bpk.go.id accepted" &&
	[ "$(rserials "$out/d10r.eml")" = "$(wserials andi auditor mitra2)" ]
tap $? "(10) after the reload: harvested auditor@ and mitra@ (newer) certificates are used" || showres d10r
run haud3 $E --client-ip 192.0.2.1 --rcpt andi@banjarkota.go.id "$in/haud.eml" &&
	[ "$(harvested auditor@bpk.go.id "$work/denc.log")" = 1 ]
tap $? "(10) after the reload, auditor@'s signed mail again: not logged again" || showres haud3
# folded Content-Type, as Thunderbird writes it, and a large one
awk '/^Content-Type: multipart\/signed;/ { sub(/; micalg=/, ";\r\n micalg="); } { print }' \
	"$in/haud.eml" >"$in/hfold.eml"
run hfold $E --client-ip 192.0.2.1 --rcpt andi@banjarkota.go.id "$in/hfold.eml" &&
	stamped hfold pass && [ "$(harvested auditor@bpk.go.id "$work/denc.log")" = 1 ]
tap $? "(10) a folded Content-Type from the same signer: smime=pass, not logged again" || showres hfold
H big "$work/bigb.txt" - - 24000
sign_as auditor auditor@bpk.go.id andi@banjarkota.go.id "big" "$work/bigb.txt" "$in/hbig.eml"
run hbig $E --client-ip 192.0.2.1 --rcpt andi@banjarkota.go.id "$in/hbig.eml" &&
	stamped hbig pass && [ "$(harvested auditor@bpk.go.id "$work/denc.log")" = 1 ]
tap $? "(10) a large signed inbound message (spooled) verifies, body untouched, not logged again" || showres hbig
# harvest = false
run hnoh --socket "inet:$port_n@127.0.0.1" --client-ip 192.0.2.1 --rcpt andi@banjarkota.go.id "$in/haud.eml" &&
	stamped hnoh pass
tap $? "(10) harvest = false: the signed inbound message is only stamped (smime=pass)" || showres hnoh
[ "$(harvested auditor@bpk.go.id "$work/dnoh.log")" = 0 ] && [ "$(rcount "$work/dnoh.conf" auditor@bpk.go.id)" = 0 ]
tap $? "(10) harvest = false: nothing harvested, nothing stored"
run hnoh2 --socket "inet:$port_n@127.0.0.1" --rcpt auditor@bpk.go.id "$in/toaud.eml"
has hnoh2 "m1.rcpt1=auditor@bpk.go.id replycode"
tap $? "(10) harvest = false: outbound to auditor@ (required) is still refused at RCPT" || showres hnoh2

# ================================================================ (11)
# whole-message refusal through the protocol, now that auditor@ has a certificate
run d11a $E --rcpt auditor@bpk.go.id "$in/tamu.eml"
has d11a "m1.rcpt1=auditor@bpk.go.id accepted" && has d11a "m1.stage=eoh" &&
	has d11a "m1.result=replycode" && grep -q '^m1\.reply=550 5\.7\.1 .*encryption' "$out/d11a.res"
tap $? "(11) sender without certificate to required auditor@: 550 5.7.1 at end of headers" || showres d11a
for p in "$pid_e:rules+harvest" "$pid_p:no rules" "$pid_n:harvest=false"; do
	kill -0 "${p%%:*}" 2>/dev/null
	tap $? "(11) the milter (${p#*:}) is still running"
done
sleep 0.2
ls -A "$work/tmp-denc" "$work/tmp-dplain" "$work/tmp-dnoh" >"$work/tmpls" 2>&1
[ -z "$(grep -v ':$' "$work/tmpls" | grep -v '^$')" ]
tap $? "(11) no temp file left in the milters' temp_dir" || sed 's/^/#   /' "$work/tmpls"
if grep -qi 'error\|assert\|abort' "$work/denc.log"; then
	nok "(11) no error in the milter log"
	grep -i 'error\|assert\|abort' "$work/denc.log" | sed 's/^/#   /' | head
else
	ok "(11) no error in the milter log"
fi
echo "# total: $(($(date +%s) - t0)) s"
echo "1..$n"
