#!/bin/sh
# End-to-end encryption (issue 5): real Postfix -> smime-milter -> smtp-sink,
# every encrypted message decrypted by independent code (openssl cms AND
# gpgsm, tests/lib/decrypt.sh), its inner signature verified (openssl and
# gpgsm, tests/lib/verify.sh) and its decoded content compared with what was
# sent.
#
#   sh tests/e2e/postfix-encrypt.sh          (KEEP=1 keeps the work directory)
#
# Policy: jabarprov.go.id opportunistic, bpk.go.id required, harvest on.
# Recipient certificates: mitra and ecmitra (jabarprov.go.id) imported with
# smimectl; auditor@bpk.go.id unknown until it is harvested.
#   1. AES-256-CBC + RSA PKCS#1 v1.5 to mitra: decrypts with mitra's key
#      (openssl and gpgsm) and with the sender's own key (archive copy)
#   2. to the EC recipient ecmitra: ECDH, decrypts with openssl (gpgsm 2.2
#      cannot: decrypt.sh says so and why)
#   3. opportunistic, one recipient without a certificate: signed only
#   4. required, auditor@bpk.go.id without a certificate: that recipient is
#      refused with 550 5.7.1 at RCPT, mitra still gets the message, encrypted
#   5. harvesting: a signed message from auditor@bpk.go.id arrives from
#      outside (untouched); its certificate is learned, logged once, and the
#      next outbound message to auditor is encrypted to it, without a reload
#   6. reload with encrypt_cipher = "aes-256-gcm": authEnveloped-data
#   7. reload with encrypt_rsa_padding = "oaep": RSAES-OAEP
# Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
. "$TOP/tests/lib/e2e.sh"
. "$TOP/tests/lib/decrypt.sh"
e2e_begin e2e-enc

# ---------------------------------------------------------------- setup
e2e_pki
mkdir -p "$work/send" "$work/out"
set -- $(pf_free_ports 3)
milter_port=$1 smtp_port=$2 sink_port=$3
conf=$work/smime-milter.conf
# write_conf [EXTRA-LINE...]: the configuration (me_conf), with the rules
# and the extra lines
write_conf() {
	me_conf "$conf" "$work" "inet:$milter_port@127.0.0.1" 'harvest = true;' "$@"
	cat >>"$conf" <<'EOF'
encrypt = (
  { recipients = [ "jabarprov.go.id" ]; mode = "opportunistic"; },
  { recipients = [ "bpk.go.id" ]; mode = "required"; }
);
EOF
}
write_conf

ctl "smimectl init" init
ctl "smimectl import andi (sender)" import --mailbox andi@banjarkota.go.id \
	--kind individual --p12 "$pki/andi.p12" --passphrase-file "$pki/andi.pass"
ctl "smimectl recipient import mitra (PEM) and ecmitra (EC)" recipient import \
	"$pki/mitra.crt.pem" "$pki/ecmitra.crt.pem"

e2e_start_xclient

# ---------------------------------------------------------------- helpers
# msg TAG FROM TO-HEADER: a multipart message with non-ASCII text and an
# attachment, Message-ID <TAG@test>, written to $work/send/TAG.eml (CRLF)
msg() {
	"$PY" - "$work/send/$1.eml" "$1" "$2" "$3" <<'EOF'
import base64, sys
path, tag, frm, to = sys.argv[1:5]
att = base64.encodebytes(bytes(range(256)) * 8).decode().replace("\n", "\r\n")
text = ("Yth. Bapak/Ibu,\r\n\r\nBerikut laporan keuangan triwulan III "
        "(rahasia) \u2013 mohon tidak disebarluaskan.\r\n\r\nSalam,\r\nAndi\r\n")
m = ("From: Andi Pratama <%s>\r\nTo: %s\r\nSubject: Laporan %s\r\n"
     "Date: Tue, 24 Nov 2026 10:00:00 +0700\r\nMessage-ID: <%s@test>\r\n"
     "MIME-Version: 1.0\r\n"
     "Content-Type: multipart/mixed; boundary=\"b-%s\"\r\n\r\n"
     "--b-%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
     "Content-Transfer-Encoding: 8bit\r\n\r\n%s\r\n"
     "--b-%s\r\nContent-Type: application/octet-stream; name=\"data.bin\"\r\n"
     "Content-Disposition: attachment; filename=\"data.bin\"\r\n"
     "Content-Transfer-Encoding: base64\r\n\r\n%s--b-%s--\r\n"
     % (frm, to, tag, tag, tag, tag, text, tag, att, tag))
open(path, "wb").write(m.encode("utf-8"))
EOF
}

sent=0
# send TAG RCPTS: returns 0 when Postfix accepted the message
send() {
	_code=$(pf_send andi@banjarkota.go.id "$2" "$work/send/$1.eml" 2>"$work/send/$1.err")
	if [ "$_code" = 250 ]; then
		sent=$((sent + 1))
		return 0
	fi
	sed 's/^/#   /' "$work/send/$1.err"
	return 1
}

# delivered TAG: the sink copy of the message with Message-ID <TAG@test> to
# $work/out/TAG.eml; 1 when it is not there (waits up to 30 s)
delivered() { e2e_wait_msgid "$1@test" 30 "$work/out/$1.eml"; }

# mail_one TAG TO-HEADER RCPTS LABEL ACCEPTED: msg from andi@ and send, one
# check "LABEL: ACCEPTED"; then one check that it was delivered, 1 if not
mail_one() {
	msg "$1" andi@banjarkota.go.id "$2"
	send "$1" "$3"
	tap $? "$4: $5"
	if delivered "$1"; then
		ok "$4: delivered"
		return 0
	fi
	nok "$4: delivered"
	return 1
}

# check_decrypt TAG RECIPIENT-NAME CIPHER WHAT: decrypt_message's checks as
# TAP lines (cd_* names: sh has no locals, and decrypt.sh uses _x names)
check_decrypt() {
	cd_t=$1 cd_r=$2 cd_c=$3 cd_w=$4
	echo "# --- $cd_t: decrypt as $cd_r ($cd_w)"
	decrypt_message "$work/out/$cd_t.eml" "$work/send/$cd_t.eml" \
		andi@banjarkota.go.id "$cd_r" "$pki" "$cd_c"
	tap "$([ "$DM_STRUCT" = ok ]; echo $?)" "$cd_t: application/pkcs7-mime structure, outer headers unchanged"
	tap "$([ "$DM_ALG" = ok ]; echo $?)" "$cd_t: $cd_c content encryption ($DM_CIPHER; recipients: $DM_KEYALGS)"
	tap "$([ "$DM_OPENSSL" = ok ]; echo $?)" "$cd_t: openssl cms -decrypt with $cd_r's key"
	if [ "$DM_GPGSM" = skip ]; then
		ok "$cd_t: gpgsm --decrypt with $cd_r's key # SKIP $DM_GPGSM_WHY"
	else
		tap "$([ "$DM_GPGSM" = ok ]; echo $?)" "$cd_t: gpgsm --decrypt with $cd_r's key, same bytes as openssl"
	fi
	tap "$([ "$DM_INNER" = ok ]; echo $?)" "$cd_t: inner signature verifies (openssl, gpgsm) and the decoded content equals what was sent"
}

# is_recipient TAG PKI-NAME: NAME's certificate is among the RecipientInfos
is_recipient() {
	dm_recipients "$work/out/$1.eml" >"$work/recips.$1" 2>/dev/null
	dm_cert_id "$pki/$2.crt.pem" | while read -r _id; do
		grep -qxF "$_id" "$work/recips.$1" && echo yes && break
	done | grep -q yes
}

# reload [EXTRA-LINE...]: new configuration, SIGUSR1, wait for the log line
reload() {
	write_conf "$@"
	_before=$(grep -c 'reloaded: generation' "$work/milter.log")
	"$CTL" -c "$conf" reload >/dev/null 2>&1 || return 1
	_i=0
	while [ "$(grep -c 'reloaded: generation' "$work/milter.log")" -le "$_before" ]; do
		_i=$((_i + 1))
		[ $_i -gt 100 ] && return 1
		sleep 0.1
	done
}

# ---------------------------------------------------------------- 1. CBC
if mail_one cbc "Mitra Jabar <mitra@jabarprov.go.id>" mitra@jabarprov.go.id "cbc" "accepted by Postfix with the milter"; then
	check_decrypt cbc mitra aes-256-cbc "AES-256-CBC, RSA PKCS#1 v1.5"
	case " $DM_KEYALGS " in
	*" rsaesOaep "* | *dhSinglePass*) nok "cbc: RSA PKCS#1 v1.5 key transport only ($DM_KEYALGS)" ;;
	*) ok "cbc: RSA PKCS#1 v1.5 key transport only ($DM_KEYALGS)" ;;
	esac
	gpgsm_can_decrypt rsaEncryption aes-256-cbc
	tap $? "cbc: this gpgsm decrypts AES-256-CBC with RSA v1.5 (so the gpgsm check above was not skipped)"
	is_recipient cbc andi
	tap $? "cbc: the sender's own certificate is a recipient"
	is_recipient cbc mitra
	tap $? "cbc: mitra's certificate is a recipient"
	check_decrypt cbc andi aes-256-cbc "the sender's archive copy"
fi
grep -q 'signed for andi@banjarkota.go.id with certificate .* and encrypted (aes-256-cbc, 2 certificates)' "$work/milter.log"
tap $? "cbc: the log says signed and encrypted to 2 certificates"

# ---------------------------------------------------------------- 2. EC
if mail_one ec "ecmitra@jabarprov.go.id" ecmitra@jabarprov.go.id "ec" "accepted by Postfix with the milter"; then
	check_decrypt ec ecmitra aes-256-cbc "EC recipient, ECDH"
	case "$DM_RECIP_KEYALG" in
	dhSinglePass-stdDH-sha256kdf-scheme) ok "ec: ECDH key agreement ($DM_RECIP_KEYALG)" ;;
	*) nok "ec: ECDH key agreement (got '$DM_RECIP_KEYALG')" ;;
	esac
fi

# ---------------------------------------------------------------- 3. opportunistic
if mail_one opp "mitra@jabarprov.go.id, lain@jabarprov.go.id" "mitra@jabarprov.go.id,lain@jabarprov.go.id" "opportunistic" "accepted for both recipients"; then
	if decrypt_is_encrypted "$work/out/opp.eml"; then
		nok "opportunistic: one recipient has no certificate, so it is signed only"
	else
		ok "opportunistic: one recipient has no certificate, so it is signed only"
	fi
	verify_message "$work/out/opp.eml" "$work/send/opp.eml" andi@banjarkota.go.id "$pki"
	tap $? "opportunistic: the signature verifies (openssl, gpgsm) and the content is intact${VM_FAILED:+ failed:$VM_FAILED}"
fi
grep -q 'not encrypted (opportunistic): no valid certificate for lain@jabarprov.go.id' "$work/milter.log"
tap $? "opportunistic: the log says why it was not encrypted"

# ---------------------------------------------------------------- 4. required
msg req andi@banjarkota.go.id "auditor@bpk.go.id, mitra@jabarprov.go.id"
send req "auditor@bpk.go.id,mitra@jabarprov.go.id"
tap $? "required: the message is accepted for the recipient with a certificate"
grep -q '^# pf_send rcpt auditor@bpk.go.id: 550 5.7.1 .*encryption to auditor@bpk.go.id is required' "$work/send/req.err"
tap $? "required: auditor@bpk.go.id (no certificate) refused at RCPT with 550 5.7.1 and a clear text"
grep -q '^# pf_send rcpt mitra@jabarprov.go.id: 250' "$work/send/req.err"
tap $? "required: mitra@jabarprov.go.id accepted in the same transaction"
if delivered req; then
	ok "required: delivered"
	grep -q '^X-Rcpt-Args: <auditor@bpk.go.id>' "$(pf_sink_files | xargs grep -l '^Message-ID: <req@test>' | head -1)"
	tap "$([ $? -ne 0 ]; echo $?)" "required: the refused recipient is not in the delivered envelope"
	check_decrypt req mitra aes-256-cbc "after a refused recipient"
else
	nok "required: delivered"
fi
grep -q 'recipient <auditor@bpk.go.id> refused: encryption to auditor@bpk.go.id is required' "$work/milter.log"
tap $? "required: the log names the refused recipient and the rule"

# ---------------------------------------------------------------- 5. harvest
# auditor's signed mail arrives from outside (XCLIENT 192.0.2.1)
printf 'Content-Type: text/plain; charset=us-ascii\r\n\r\nSalam dari BPK: mohon laporan dikirim terenkripsi.\r\n' >"$work/h-inner.txt"
if openssl smime -sign -binary -in "$work/h-inner.txt" -signer "$pki/auditor.crt.pem" \
	-inkey "$pki/auditor.key.pem" -certfile "$pki/inter.crt.pem" >"$work/h-signed.part" 2>"$work/h.err"; then
	{
		printf 'From: Auditor BPK <auditor@bpk.go.id>\r\nTo: andi@banjarkota.go.id\r\n'
		printf 'Subject: permintaan laporan\r\nDate: Tue, 24 Nov 2026 11:00:00 +0700\r\n'
		printf 'Message-ID: <harvest@test>\r\n'
		"$PY" "$SC" crlf "$work/h-signed.part" "$work/h-signed.crlf" &&
			cat "$work/h-signed.crlf"
	} >"$work/send/harvest.eml"
	ok "harvest: a message signed by auditor@bpk.go.id (openssl smime -sign)"
else
	sed 's/^/# /' "$work/h.err"
	nok "harvest: a message signed by auditor@bpk.go.id (openssl smime -sign)"
fi
cp "$work/send/harvest.eml" "$work/send/harvest2.eml"
sed -i 's/^Message-ID: <harvest@test>/Message-ID: <harvest2@test>/' "$work/send/harvest2.eml"
for t in harvest harvest2; do
	PF_XCLIENT="ADDR=192.0.2.1 NAME=mx.bpk.go.id" pf_send auditor@bpk.go.id \
		andi@banjarkota.go.id "$work/send/$t.eml" >/dev/null 2>"$work/send/$t.err"
	tap $? "$t: inbound signed message accepted (client 192.0.2.1)"
	if delivered $t; then
		"$PY" "$SC" same-body "$work/send/$t.eml" "$work/out/$t.eml"
		tap $? "$t: delivered untouched"
	else
		nok "$t: delivered untouched"
	fi
done
c=$(grep -c 'harvested certificate .* for auditor@bpk.go.id' "$work/milter.log")
tap "$([ "$c" = 1 ]; echo $?)" "harvest: logged once for two messages (got $c)"
"$CTL" -c "$conf" recipient list >"$work/rlist" 2>&1
grep -E 'auditor@bpk.go.id .* active +harvest' "$work/rlist" >/dev/null
tap $? "harvest: smimectl recipient list shows auditor's certificate, source harvest"
if mail_one after "auditor@bpk.go.id" auditor@bpk.go.id "after harvest" "auditor@bpk.go.id (required) is accepted now, without a reload"; then
	check_decrypt after auditor aes-256-cbc "harvested certificate"
fi

# ---------------------------------------------------------------- 6. GCM
reload 'encrypt_cipher = "aes-256-gcm";'
tap $? "reload with encrypt_cipher = aes-256-gcm"
if mail_one gcm "mitra@jabarprov.go.id" mitra@jabarprov.go.id "gcm" "accepted"; then
	grep -qi '^Content-Type: application/pkcs7-mime; smime-type=authEnveloped-data' "$work/out/gcm.eml"
	tap $? "gcm: smime-type=authEnveloped-data"
	check_decrypt gcm mitra aes-256-gcm "AES-256-GCM AuthEnvelopedData"
fi

# ---------------------------------------------------------------- 7. OAEP
reload 'encrypt_rsa_padding = "oaep";'
tap $? "reload with encrypt_rsa_padding = oaep"
if mail_one oaep "mitra@jabarprov.go.id" mitra@jabarprov.go.id "oaep" "accepted"; then
	check_decrypt oaep mitra aes-256-cbc "RSA-OAEP"
	case "$DM_RECIP_KEYALG" in
	rsaesOaep) ok "oaep: mitra's RecipientInfo uses RSAES-OAEP ($DM_KEYDETAILS)" ;;
	*) nok "oaep: mitra's RecipientInfo uses RSAES-OAEP (got '$DM_RECIP_KEYALG')" ;;
	esac
fi

# ---------------------------------------------------------------- audit
# six messages went out encrypted: cbc ec req after gcm oaep (the audit
# queue writes in the background: give it a moment)
i=0
while :; do
	enc=$(sqlite3 "$work/smime.db" "SELECT count(*) FROM audit WHERE action = 'encrypted'" 2>/dev/null)
	{ [ "${enc:-0}" -ge 6 ] || [ $i -ge 50 ]; } && break
	i=$((i + 1))
	sleep 0.1
done
tap "$([ "${enc:-0}" = 6 ]; echo $?)" "audit: six rows with action encrypted (got ${enc:-none})"
"$CTL" -c "$conf" report --year "$(date +%Y)" --format csv >"$work/report.csv" 2>&1
"$PY" - "$work/report.csv" <<'EOF'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
i = next(k for k, r in enumerate(rows) if r and "month" in r and "encrypted" in r)
col = rows[i].index("encrypted")
total = 0
for r in rows[i + 1:]:
    if not r or r[0].startswith("#"):
        break
    total += int(r[col])
print("# report: %d encrypted" % total)
sys.exit(0 if total == 6 else 1)
EOF
tap $? "smimectl report counts the six encrypted messages in its encrypted column"

# ---------------------------------------------------------------- health
e2e_alive
echo "1..$n"
