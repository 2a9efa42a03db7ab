#!/bin/sh
# smimectl lifecycle commands: owners on import, list filters, map/unmap,
# revoke, and `expiring` with monitoring-plugin exit codes, on certificates
# issued by the test CA with different expiry dates.  Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
fx_begin admin

fx_pki || bail "test PKI"
# certificates expiring in 5 and 20 days, from the test issuing CA
for spec in soon5:5:5005 soon20:20:5020; do
	name=${spec%%:*} rest=${spec#*:}
	days=${rest%%:*} serial=${rest#*:}
	fx_issue "$name" "$pki" "$serial" "$days" "/CN=$name/O=Pemerintah Kota Banjar" \
		"$name@banjarkota.go.id" || bail "issue $name"
done

conf=$work/m.conf
me_conf "$conf" "$work" "inet:1@127.0.0.1"
expect 0 "init" "$CTL" -c "$conf" init
v=$(me_db_version "$work")
[ "$v" = 9 ]
tap $? "schema is at version 9 ($v)"

# refusals: nothing is written
head -c 600 "$pki/andi.p12" >"$work/corrupt.p12"
expect 65 "import refuses a corrupt PKCS#12" "$CTL" -c "$conf" import \
	--mailbox andi@banjarkota.go.id --kind individual \
	--p12 "$work/corrupt.p12" --passphrase-file "$pki/andi.pass"
printf 'wrong\n' >"$work/wrong.pass"
chmod 600 "$work/wrong.pass"
expect 65 "import refuses a wrong passphrase" "$CTL" -c "$conf" import \
	--mailbox andi@banjarkota.go.id --kind individual \
	--p12 "$pki/andi.p12" --passphrase-file "$work/wrong.pass"
grep -q "wrong passphrase" "$work/out"
tap $? "... and says so"
# refuses CODE WHAT MAILBOX KIND CERT KEY: a PEM import exits with CODE
refuses() {
	expect "$1" "import refuses $2" "$CTL" -c "$conf" import --mailbox "$3@banjarkota.go.id" \
		--kind "$4" --cert "$pki/$5.crt.pem" --key "$pki/$6.key.pem"
}
refuses 65 "a key that does not match" andi individual andi sekda
refuses 65 "a certificate without the mailbox" budi individual andi andi
refuses 65 "an expired certificate" expired individual expired expired
refuses 64 "an unknown kind" andi person andi andi
expect 65 "import refuses a --unit that is not UTF-8 (Latin-1)" "$CTL" -c "$conf" import \
	--mailbox andi@banjarkota.go.id --kind individual \
	--cert "$pki/andi.crt.pem" --key "$pki/andi.key.pem" --unit "$(printf 'Dinas Kesehatan \351')"
has "--unit: not UTF-8 text" "... and names the option"
c=$(me_sql "$work" "SELECT count(*) FROM certificates")
k=$(ls "$work/keys" | wc -l)
[ "$c" = 0 ] && [ "$k" = 0 ]
tap $? "nothing written by the refused imports ($c rows, $k key files)"

expect 0 "expiring on an empty database is OK" "$CTL" -c "$conf" expiring --days 30
expect 0 "import with owner, NIP, unit and contact" "$CTL" -c "$conf" import \
	--mailbox andi@banjarkota.go.id --kind individual \
	--p12 "$pki/andi.p12" --passphrase-file "$pki/andi.pass" \
	--owner "Andi Pratama" --nip 198703122010011002 \
	--unit "Dinas Komunikasi dan Informatika" --contact andi.pratama@banjarkota.go.id
expect 65 "a duplicate import is refused" "$CTL" -c "$conf" import \
	--mailbox andi@banjarkota.go.id --kind individual \
	--p12 "$pki/andi.p12" --passphrase-file "$pki/andi.pass"
expect 0 "import a role certificate" "$CTL" -c "$conf" import \
	--mailbox sekda@banjarkota.go.id --kind role \
	--cert "$pki/sekda.crt.pem" --key "$pki/sekda.key.pem" \
	--owner "Sekretariat Daerah" --unit "Sekretariat Daerah"
"$CTL" -c "$conf" list --json >"$work/list.json"
/usr/bin/python3 - "$work/list.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
andi = [r for r in rows if r["mailbox"] == "andi@banjarkota.go.id"][0]
assert andi["owner"] == "Andi Pratama", andi
assert andi["nip"] == "198703122010011002", andi
assert andi["unit"] == "Dinas Komunikasi dan Informatika", andi
assert andi["contact"] == "andi.pratama@banjarkota.go.id", andi
sekda = [r for r in rows if r["mailbox"] == "sekda@banjarkota.go.id"][0]
assert sekda["contact"] == "sekda@banjarkota.go.id", sekda  # default: the mailbox
assert sekda["kind"] == "role" and sekda["mapped"] is True
PY
tap $? "list --json carries owner, NIP, unit and contact (default: the mailbox)"
c=$("$CTL" -c "$conf" list --kind role | grep -c banjarkota)
[ "$c" = 1 ]
tap $? "list --kind role shows only the role certificate ($c)"
c=$("$CTL" -c "$conf" list --unit "Dinas Komunikasi dan Informatika" | grep -c andi@)
[ "$c" = 1 ]
tap $? "list --unit filters by Perangkat Daerah"
expect 0 "expiring --days 30 with only long-lived certificates: OK" \
	"$CTL" -c "$conf" expiring --days 30

expect 0 "import a certificate expiring in 20 days" "$CTL" -c "$conf" import \
	--mailbox soon20@banjarkota.go.id --kind system \
	--cert "$pki/soon20.crt.pem" --key "$pki/soon20.key.pem"
expect 1 "expiring --days 30: WARNING" "$CTL" -c "$conf" expiring --days 30
grep -q "WARNING: soon20@banjarkota.go.id certificate 5020 expires" "$work/out"
tap $? "the warning names mailbox and serial"
expect 0 "expiring --days 10: still OK" "$CTL" -c "$conf" expiring --days 10
expect 0 "import a certificate expiring in 5 days" "$CTL" -c "$conf" import \
	--mailbox soon5@banjarkota.go.id --kind individual \
	--cert "$pki/soon5.crt.pem" --key "$pki/soon5.key.pem"
expect 2 "expiring --days 30: CRITICAL (within alert_critical_days)" \
	"$CTL" -c "$conf" expiring --days 30
"$CTL" -c "$conf" expiring --days 30 --json >"$work/exp.json"
/usr/bin/python3 - "$work/exp.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
by = {c["mailbox"]: c for c in d["certificates"]}
assert set(by) == {"soon5@banjarkota.go.id", "soon20@banjarkota.go.id"}, by
assert by["soon5@banjarkota.go.id"]["level"] == "critical"
assert by["soon20@banjarkota.go.id"]["level"] == "warning"
assert d["status"] == "critical"
PY
tap $? "expiring --json lists exactly the two, with their levels"

# map / unmap
soon5id=$("$CTL" -c "$conf" list --json | /usr/bin/python3 -c \
	'import json,sys; print([r["id"] for r in json.load(sys.stdin) if r["mailbox"].startswith("soon5")][0])')
expect 0 "unmap soon5@" "$CTL" -c "$conf" unmap soon5@banjarkota.go.id
expect 1 "an unmapped certificate no longer counts: WARNING" \
	"$CTL" -c "$conf" expiring --days 30
expect 66 "unmap of an unknown mailbox is refused" \
	"$CTL" -c "$conf" unmap nobody@banjarkota.go.id
expect 65 "map refuses a certificate that does not carry the mailbox" \
	"$CTL" -c "$conf" map sekda@banjarkota.go.id "$soon5id"
expect 0 "map soon5@ back by id" "$CTL" -c "$conf" map soon5@banjarkota.go.id "$soon5id"
expect 66 "map with an unknown certificate" \
	"$CTL" -c "$conf" map soon5@banjarkota.go.id DEADBEEF0123

# revoke
fpr=$(openssl x509 -in "$pki/andi.crt.pem" -noout -fingerprint -sha256 |
	sed 's/.*=//; s/://g')
printf 'From: andi@banjarkota.go.id\nSubject: t\n\nhalo\n' >"$work/m.eml"
"$ME_MILTER" -c "$conf" -t "$work/m.eml" 2>/dev/null | grep -q "multipart/signed"
tap $? "andi@ signs before revocation"
expect 64 "revoke needs a reason" "$CTL" -c "$conf" revoke "$fpr"
expect 64 "revoke refuses an unknown reason" "$CTL" -c "$conf" revoke "$fpr" --reason lost
expect 0 "revoke by fingerprint, keyCompromise" \
	"$CTL" -c "$conf" revoke "$fpr" --reason keyCompromise
st=$("$CTL" -c "$conf" list --json | /usr/bin/python3 -c \
	'import json,sys; print([r["status"] for r in json.load(sys.stdin) if r["mailbox"].startswith("andi")][0])')
[ "$st" = revoked ]
tap $? "status is revoked ($st)"
r=$(me_sql "$work" "SELECT revocation_reason FROM certificates WHERE fingerprint = '$fpr'")
[ "$r" = keyCompromise ]
tap $? "reason recorded ($r)"
h=$(me_sql "$work" "SELECT count(*) FROM mailbox_history WHERE event = 'revoked' AND detail = 'keyCompromise' AND actor IS NOT NULL")
[ "$h" = 1 ]
tap $? "history records who revoked and why"
"$ME_MILTER" -c "$conf" -t "$work/m.eml" 2>/dev/null | grep -q "multipart/signed"
[ $? != 0 ]
tap $? "a fresh snapshot no longer signs with the revoked certificate"
expect 0 "revoking again says so" "$CTL" -c "$conf" revoke "$fpr" --reason keyCompromise
grep -q "already revoked" "$work/out"
tap $? "... already revoked"

# a database locked by another writer: wait, then a clear message
if me_db_pg; then # a writer holding the table the unmap writes
	(echo "BEGIN; LOCK TABLE mailbox_history; SELECT pg_sleep(8); COMMIT;") |
		me_sql "$work" - >/dev/null &
	locker=$!
	for i in $(seq 1 50); do # until the lock is held (psql starts slowly)
		[ "$(me_sql "$work" "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'mailbox_history' AND l.mode = 'AccessExclusiveLock' AND l.granted")" = 1 ] && break
		sleep 0.1
	done
else
	(echo "BEGIN IMMEDIATE;"; sleep 8; echo "COMMIT;") | sqlite3 "$work/smime.db" &
	locker=$!
	sleep 0.5
fi
expect 75 "a locked database: unmap gives up after waiting" \
	"$CTL" -c "$conf" unmap soon20@banjarkota.go.id
grep -q "locked by another process (waited 5 s" "$work/out"
tap $? "... with a clear message"
wait "$locker"
expect 0 "after the lock is gone, list works" "$CTL" -c "$conf" list

# ---- renew: new key + CSR, the issued certificate supersedes the old one
expect 0 "renew soon20@ (new RSA key and CSR)" \
	"$CTL" -c "$conf" renew soon20@banjarkota.go.id --out "$work"
csr=$work/soon20@banjarkota.go.id.csr.pem
openssl req -in "$csr" -verify -noout >/dev/null 2>&1
tap $? "openssl req -verify accepts the CSR"
subj_old=$(openssl x509 -in "$pki/soon20.crt.pem" -noout -subject -nameopt RFC2253)
subj_new=$(openssl req -in "$csr" -noout -subject -nameopt RFC2253)
[ "$subj_old" = "$subj_new" ] && openssl req -in "$csr" -noout -text | grep -q "email:soon20@banjarkota.go.id"
tap $? "CSR keeps subject and subjectAltName of the current certificate"
k=$(ls "$work/keys" | grep -c '^renew-')
m=$(stat -c %a "$work"/keys/renew-* | sort -u | tr '\n' ' ')
[ "$k" = 2 ] && [ "$m" = "600 " ]
tap $? "the new key waits in key_dir as a PKCS#12 with its passphrase file, 0600 ($k files, $m)"
openssl x509 -req -in "$csr" -CA "$pki/inter.crt.pem" -CAkey "$pki/inter.key.pem" \
	-set_serial 0x6020 -days 365 -copy_extensions copyall \
	-out "$work/soon20-new.crt.pem" 2>/dev/null || bail "CA issues from the CSR"
expect 65 "importing the new certificate for another mailbox is refused" \
	"$CTL" -c "$conf" import --mailbox soon5@banjarkota.go.id --kind system \
	--cert "$work/soon20-new.crt.pem"
expect 0 "import the issued certificate without --key: matched to the pending key" \
	"$CTL" -c "$conf" import --mailbox soon20@banjarkota.go.id --kind system \
	--cert "$work/soon20-new.crt.pem"
grep -q "matched to the key of renewal" "$work/out"
tap $? "... says which renewal it completed"
st=$("$CTL" -c "$conf" list --json | /usr/bin/python3 -c '
import json, sys
rows = [r for r in json.load(sys.stdin) if r["mailbox"] == "soon20@banjarkota.go.id"]
print(" ".join(sorted(r["serial"] + ":" + r["status"] for r in rows)))')
[ "$st" = "5020:superseded 6020:active" ]
tap $? "the old certificate is superseded, history keeps both ($st)"
printf 'From: soon20@banjarkota.go.id\nSubject: r\n\nhalo\n' >"$work/r.eml"
"$ME_MILTER" -c "$conf" -t "$work/r.eml" >"$work/r.out" 2>/dev/null &&
	openssl cms -verify -in "$work/r.out" -CAfile "$pki/root.crt.pem" \
		-out /dev/null 2>/dev/null &&
	openssl cms -verify -in "$work/r.out" -noverify -signer "$work/r.signer" \
		-out /dev/null 2>/dev/null &&
	openssl x509 -in "$work/r.signer" -noout -serial | grep -q "=6020"
tap $? "mail from soon20@ is signed with the renewed key and certificate"
expect 65 "a certificate with no pending key and no --key is refused" \
	"$CTL" -c "$conf" import --mailbox sekda@banjarkota.go.id --kind role \
	--cert "$pki/noreply.crt.pem"

# ---- notify: renewal alerts through a fake sendmail_path
mkdir -p "$work/mails"
cat >"$work/fake-sendmail" <<FAKE
#!/bin/sh
[ -e "$work/sendmail-fails" ] && exit 75
f=\$(mktemp "$work/mails/mail.XXXXXX")
echo "ARGS: \$*" >"\$f"
cat >>"\$f"
FAKE
chmod 755 "$work/fake-sendmail"
chmod 755 "$work" "$work/mails"
chmod 777 "$work/mails"
sed -i '/^alert_days\|^op_admin\|^sendmail_path/d' "$conf"
cat >>"$conf" <<CONF
alert_days = [ 30, 14, 7, 1 ];
op_admin = "op@banjarkota.go.id";
sendmail_path = "$work/fake-sendmail";
CONF
expect 0 "notify --dry-run" "$CTL" -c "$conf" notify --dry-run
c=$(grep -c "^---- alert for" "$work/out")
[ "$c" = 1 ] && [ -z "$(ls "$work/mails")" ]
tap $? "dry run shows 1 alert (soon5@; soon20@ is renewed) and sends nothing ($c)"
grep -Eq "Sertifikat soon5@banjarkota.go.id berakhir dalam [45] hari" "$work/out"
tap $? "dry run text names the mailbox and the days left"
touch "$work/sendmail-fails"
expect 75 "notify with a failing sendmail exits 75" "$CTL" -c "$conf" notify
rm -f "$work/sendmail-fails"
expect 0 "notify sends" "$CTL" -c "$conf" notify
c=$(ls "$work/mails" | wc -l)
[ "$c" = 1 ]
tap $? "one alert mail handed to sendmail: soon20@ was renewed ($c)"
m=$(grep -l "^To: soon5@banjarkota.go.id" "$work"/mails/* | head -1)
[ -n "$m" ] && grep -q "^Cc: op@banjarkota.go.id" "$m" &&
	grep -q "^ARGS: -oi -t" "$m" && grep -q "Pasal 14" "$m" &&
	grep -q "5005" "$m"
tap $? "alert goes to the contact with a copy to op_admin, cites Pasal 14, names the serial"
expect 0 "notify again" "$CTL" -c "$conf" notify
c=$(ls "$work/mails" | wc -l)
[ "$c" = 1 ] && grep -q "0 alerts sent, 1 already sent before" "$work/out"
tap $? "a second run sends nothing new ($c mails in all)"
t=$(me_sql "$work" "SELECT threshold FROM alerts_sent a JOIN certificates c ON c.id = a.cert_id WHERE c.serial = '5005' ORDER BY threshold" | paste -sd,)
[ "$t" = "7,14,30" ]
tap $? "every threshold already crossed is recorded, so no burst later ($t)"
echo "1..$n"
