#!/bin/sh
# Encryption (issue 5), at the protocol level: sign, then encrypt to the
# recipients with known certificates.  The openssl CLI is the independent
# decrypter and verifier (the Postfix end-to-end test adds gpgsm).
#
# Offline mode (smime-milter -t FILE [-r ADDR]...):
#   (1) one partner recipient: application/pkcs7-mime enveloped-data, the
#       other headers unchanged and in order, encrypted to exactly the
#       recipient and the sender, decrypts with both keys and not with a
#       stranger's, inner multipart/signed verifies, decoded content equal
#       (8bit text and a multipart with an 8bit attachment), AES-256-CBC +
#       rsaEncryption
#   (2) recipients from To/Cc/Bcc: RSA + EC (ECDH) recipients; a Bcc without
#       a certificate under an opportunistic rule gives signed only
#   (3) required: a recipient without a certificate is refused (550 5.7.1),
#       the others get the message encrypted; nobody left: exit 69
#   (4) whole-message refusal: sender without a (suitable) certificate,
#       a recipient without a certificate beside a required one, client
#       signed; client-encrypted mail passes untouched
#   (5) rule specificity; senders-limited rules; no rule: signed only
#   (6) AES-256-GCM / AES-128-GCM (authEnveloped-data), RSA-OAEP,
#       AES-128-CBC; bad settings refused by -n
#   (7) recipient certificates: revoked (CRL), expired, not yet valid,
#       sign-only, serverAuth-only, untrusted are never used; the newest of
#       two is used; after remove: signed only
#   (8) mapped certificates of internal mailboxes are recipient certificates
# Daemon (tests/lib/miltercli.py):
#   (9) RCPT negotiated only with encrypt rules; 550 5.7.1 at RCPT for a
#       required recipient without certificate while the others go on;
#       inbound mail is not subject to the rules; senders-limited rules at
#       RCPT; whole-message refusal at end of headers; a large message
#  (10) harvesting: learns a partner's certificate from signed inbound mail
#       once, uses it at once; negatives; harvest = false learns nothing
#  (11) the milters kept running; no temp file left behind
# Prints TAP.  KEEP=1 keeps the work directory.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
fx_begin enc
pid_e='' pid_p='' pid_n=''
fx_on_exit() {
	me_stop "$pid_e"
	me_stop "$pid_p"
	me_stop "$pid_n"
}
# like tap.sh's, but returns RC so that diagnostics can follow with ||
tap() { if [ "$1" = 0 ]; then ok "$2"; return 0; fi; nok "$2"; return 1; }
command -v openssl >/dev/null || bail "openssl is installed"

pki=$work/pki
in=$work/in
out=$work/out
mkdir -p "$in" "$out"

# ---------------------------------------------------------------- helpers
cat >"$work/enc.py" <<'EOF'
import base64, re, sys

def canon(b):
    return b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")

def split(data):
    """(header fields with their folds, body) of DATA"""
    head, blank, body = canon(data).partition(b"\r\n\r\n")
    fields = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\r\n" + line
        elif line:
            fields.append(line)
    return fields, body

def name(f):
    return f.split(b":", 1)[0].strip().lower()

def value(f):
    return re.sub(rb"\r\n[ \t]+", b" ", f.split(b":", 1)[1]).strip()

def read(p):
    with open(p, "rb") as fh:
        return fh.read()

def diag(s):
    for l in str(s).splitlines():
        print("# " + l)

def outer(orig, res, kind):
    """The encrypted result: same non-Content-* headers in the same order,
    one MIME-Version, exactly the four new Content-* headers, base64 body."""
    of, _ = split(read(orig))
    rf, body = split(read(res))
    bad = 0
    keep = lambda fs: [f for f in fs if not name(f).startswith(b"content-")
                       and name(f) != b"mime-version"]
    if keep(of) != keep(rf):
        diag("non-Content-* headers differ (order or bytes):")
        diag("  sent:   %r" % keep(of))
        diag("  result: %r" % keep(rf))
        bad = 1
    if [name(f) for f in rf].count(b"mime-version") != 1:
        diag("MIME-Version is not there exactly once")
        bad = 1
    ch = sorted(name(f) for f in rf if name(f).startswith(b"content-"))
    want = sorted([b"content-type", b"content-transfer-encoding",
                   b"content-disposition", b"content-description"])
    if ch != want:
        diag("Content-* headers outside: %r, want %r" % (ch, want))
        bad = 1
    ct = [value(f) for f in rf if name(f) == b"content-type"]
    exp = ('application/pkcs7-mime; smime-type=%s-data; name="smime.p7m"'
           % kind).encode()
    if ct != [exp]:
        diag("Content-Type %r, want %r" % (ct, exp))
        bad = 1
    cte = [value(f).lower() for f in rf
           if name(f) == b"content-transfer-encoding"]
    if cte != [b"base64"]:
        diag("Content-Transfer-Encoding %r" % cte)
        bad = 1
    lines = body.split(b"\r\n")
    while lines and lines[-1] == b"":
        lines.pop()
    if not lines or any(len(l) > 76 or not re.fullmatch(rb"[A-Za-z0-9+/=]*", l)
                        for l in lines):
        diag("body is not base64 in lines of at most 76 characters")
        bad = 1
    else:
        try:
            der = base64.b64decode(b"".join(lines), validate=True)
            if der[:1] != b"\x30":
                diag("decoded body is not a DER/BER SEQUENCE")
                bad = 1
        except Exception as e:
            diag("base64 does not decode: %s" % e)
            bad = 1
    return bad

def rebuild(res, dec, target):
    """The message a recipient reads: outer headers, Content-* replaced by
    the decrypted entity."""
    rf, _ = split(read(res))
    head = b"".join(f + b"\r\n" for f in rf if not name(f).startswith(b"content-"))
    with open(target, "wb") as fh:
        fh.write(head + canon(read(dec)))
    return 0

def ctype(p):
    fs, _ = split(read(p))
    for f in fs:
        if name(f) == b"content-type":
            print(value(f).decode("latin-1"))
            break
    return 0

def big(path, frm, to, nlines):
    """A large 8bit message (FROM "-": only the Content-* entity)."""
    with open(path, "wb") as fh:
        if frm != "-":
            fh.write(("From: %s\r\nTo: %s\r\nSubject: large\r\n"
                      "MIME-Version: 1.0\r\n" % (frm, to)).encode())
        fh.write(b"Content-Type: text/plain; charset=utf-8\r\n"
                 b"Content-Transfer-Encoding: 8bit\r\n\r\n")
        for i in range(int(nlines)):
            fh.write(("baris %06d Laporan keuangan daerah – anggaran ✓ %s\r\n"
                      % (i, "x" * (i % 50))).encode())
    return 0

def same(a, b):
    """Byte-identical after line end canonicalization."""
    if canon(read(a)) != canon(read(b)):
        diag("%s and %s differ" % (a, b))
        return 1
    return 0

cmd = sys.argv[1]
sys.exit({"outer": outer, "rebuild": rebuild, "ctype": ctype, "big": big,
          "same": same}[cmd](*sys.argv[2:]))
EOF
H() { "$PY" "$work/enc.py" "$@"; }

# decimal serial of a certificate, as `openssl cms -cmsout -print` shows it
dserial() {
	printf '%d' "0x$(openssl x509 -in "$1" -noout -serial | sed 's/^serial=//')"
}
# hex serial, as the log and smimectl show it
hserial() { openssl x509 -in "$1" -noout -serial | sed 's/^serial=//'; }
# the sorted serials of the RecipientInfos of an encrypted message
rserials() {
	openssl cms -cmsout -print -in "$1" 2>/dev/null |
		sed -n 's/^ *serialNumber: *//p' | sort -n | tr '\n' ' ' | sed 's/ $//'
}
# the sorted serials of certificates NAME... (files in $pki)
wserials() {
	for _w in "$@"; do dserial "$pki/$_w.crt.pem"; echo; done | sort -n |
		tr '\n' ' ' | sed 's/ $//'
}
# dec FILE NAME: decrypt FILE with $pki/NAME's key into FILE.dec.NAME
dec() {
	openssl cms -decrypt -in "$1" -recip "$pki/$2.crt.pem" -inkey "$pki/$2.key.pem" \
		-out "$1.dec.$2" >"$1.decerr.$2" 2>&1
}

# check_enc LABEL ORIG RESULT KIND SENDER NAMES [CIPHER-OID-NAME] [KEY-ALG]
#   KIND enveloped|authEnveloped; NAMES: space-separated certificate names in
#   $pki that must be exactly the recipients.  Checks structure, headers,
#   algorithms, recipients, decryption with each and not with a stranger's
#   key, the inner signature and the decoded content.
check_enc() {
	_l=$1 _o=$2 _r=$3 _kind=$4 _who=$5 _names=$6
	_ciph=${7:-aes-256-cbc} _kalg=${8:-rsaEncryption}
	if H outer "$_o" "$_r" "$_kind"; then
		ok "$_l: $_kind-data outside, the other headers unchanged and in order"
	else
		nok "$_l: $_kind-data outside, the other headers unchanged and in order"
	fi
	openssl cms -cmsout -print -in "$_r" >"$_r.print" 2>&1
	_ct=pkcs7-envelopedData
	[ "$_kind" = authEnveloped ] && _ct=id-smime-ct-authEnvelopedData
	_got=$(rserials "$_r")
	# shellcheck disable=SC2086
	_want=$(wserials $_names)
	if grep -q "^  contentType: $_ct " "$_r.print" &&
		grep -q "algorithm: $_ciph " "$_r.print" &&
		grep -q "algorithm: $_kalg " "$_r.print" &&
		[ "$_got" = "$_want" ]; then
		ok "$_l: $_ct, $_ciph, $_kalg, recipients exactly: $_names"
	else
		nok "$_l: $_ct, $_ciph, $_kalg, recipients exactly: $_names"
		echo "#   recipient serials $_got, want $_want"
		grep -E '^  contentType|algorithm: [a-zA-Z]' "$_r.print" | sort | uniq -c | sed 's/^/#   /'
	fi
	_first=
	_bad=
	for _w in $_names; do
		if dec "$_r" "$_w"; then
			if [ -z "$_first" ]; then
				_first=$_w
			elif ! cmp -s "$_r.dec.$_first" "$_r.dec.$_w"; then
				_bad="$_bad $_w(differs)"
			fi
		else
			_bad="$_bad $_w"
			sed 's/^/#   /' "$_r.decerr.$_w" | head -3
		fi
	done
	[ -z "$_bad" ]
	tap $? "$_l: openssl cms -decrypt works with the key of each of: $_names${_bad:+ (failed:$_bad)}"
	if dec "$_r" other; then
		nok "$_l: a stranger's key (other@example.org) does not decrypt it"
	else
		ok "$_l: a stranger's key (other@example.org) does not decrypt it"
	fi
	[ -n "$_first" ] || { nok "$_l: inner entity (nothing decrypted)"; return 1; }
	H rebuild "$_r" "$_r.dec.$_first" "$_r.inner.eml"
	case $(H ctype "$_r.inner.eml") in
	"multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256;"*)
		if openssl smime -verify -in "$_r.inner.eml" -CAfile "$pki/ca-bundle.pem" \
			-signer "$_r.signer.pem" -out /dev/null >"$_r.verify" 2>&1 &&
			openssl x509 -in "$_r.signer.pem" -noout -email | grep -qxF "$_who"; then
			ok "$_l: inner entity is multipart/signed and verifies (openssl smime -verify, signer $_who)"
		else
			nok "$_l: inner entity is multipart/signed and verifies (openssl smime -verify, signer $_who)"
			sed 's/^/#   /' "$_r.verify" | head -5
		fi
		;;
	*)
		nok "$_l: inner entity is multipart/signed and verifies"
		echo "#   inner Content-Type: $(H ctype "$_r.inner.eml")"
		;;
	esac
	if "$PY" "$SC" headers "$_o" "$_r.inner.eml" >"$_r.cmp" 2>&1 &&
		"$PY" "$SC" content "$_o" "$_r.inner.eml" >>"$_r.cmp" 2>&1; then
		ok "$_l: decrypted and unpacked, the content equals what was sent"
	else
		nok "$_l: decrypted and unpacked, the content equals what was sent"
		sed 's/^/#   /' "$_r.cmp" | head -10
	fi
}

# check_signed_only LABEL RESULT: multipart/signed outside, verifies
check_signed_only() {
	case $(H ctype "$2") in
	multipart/signed*)
		if openssl smime -verify -in "$2" -CAfile "$pki/ca-bundle.pem" -out /dev/null \
			>"$2.verify" 2>&1; then
			ok "$1: signed only (multipart/signed, verifies), not encrypted"
		else
			nok "$1: signed only (multipart/signed, verifies), not encrypted"
			sed 's/^/#   /' "$2.verify" | head -5
		fi
		;;
	*)
		nok "$1: signed only (multipart/signed), not encrypted"
		echo "#   Content-Type: $(H ctype "$2")"
		;;
	esac
}

# signed_only_logged NAME LABEL DESCRIPTION TEXT TEXT-DESCRIPTION: the tm
# run NAME (checked with tm_ok LABEL) left signed only (check_signed_only
# DESCRIPTION), and its log has the fixed string TEXT (one more check)
signed_only_logged() {
	tm_ok "$2" "$1" || return 1
	check_signed_only "$3" "$out/$1.out"
	errhas "$1" "$4"
	tap $? "$5" || showerr "$1"
}

# tm NAME CONF MSG [ARGS...]: smime-milter -c CONF -t MSG ARGS; stdout in
# $out/NAME.out, stderr in $out/NAME.err, exit status in TRC
tm() {
	_n=$1 _c=$2 _m=$3
	shift 3
	"$ME_MILTER" -c "$_c" -t "$_m" "$@" >"$out/$_n.out" 2>"$out/$_n.err"
	TRC=$?
}
# tm_ok LABEL NAME: exit 0 with output
tm_ok() {
	if [ "$TRC" = 0 ] && [ -s "$out/$2.out" ]; then
		return 0
	fi
	nok "$1: smime-milter -t exits 0 with a message (exit $TRC)"
	sed 's/^/#   /' "$out/$2.err" | head -10
	return 1
}
# errhas NAME FIXED-STRING: the -t log contains it
errhas() { grep -qF "$2" "$out/$1.err"; }
showerr() { sed 's/^/#   stderr: /' "$out/$1.err" | head -10; }

# conf NAME [EXTRA-LINE...]: a configuration $work/NAME.conf (rules follow
# on stdin, appended as they are so that file:line can be checked)
conf() {
	_c=$1
	shift
	mkdir -p "$work/tmp-$_c"
	chmod 0700 "$work/tmp-$_c"
	me_conf "$work/$_c.conf" "$work" "inet:${CPORT:-1}@127.0.0.1" \
		"temp_dir = \"$work/tmp-$_c\";" "$@"
	cat >>"$work/$_c.conf"
}

# sign_as NAME FROM TO SUBJECT BODYFILE OUTFILE [opaque]: an S/MIME signed
# message made by openssl with NAME's key (what a partner's client sends)
sign_as() {
	_flags=
	[ "${7:-}" = opaque ] && _flags=-nodetach
	# shellcheck disable=SC2086
	openssl smime -sign $_flags -signer "$pki/$1.crt.pem" -inkey "$pki/$1.key.pem" \
		-certfile "$pki/inter.crt.pem" -in "$5" -out "$6.tmp" || return 1
	{
		printf 'From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: Tue, 24 Nov 2026 09:00:00 +0700\r\n' \
			"$2" "$3" "$4"
		printf 'Message-ID: <%s.%s@partner.example>\r\n' "$1" "$(basename "$6" .eml)"
		cat "$6.tmp"
	} >"$6"
	rm -f "$6.tmp"
}

# ---------------------------------------------------------------- setup
t0=$(date +%s)
conf base <<EOF
EOF
me_setup "$work" "$work/base.conf" || bail "PKI built and mailboxes imported"
"$ME_CTL" -c "$work/base.conf" import --mailbox ec@banjarkota.go.id --kind individual \
	--p12 "$pki/ec.p12" --passphrase-file "$pki/ec.pass" >"$work/ec.log" 2>&1 ||
	{ sed 's/^/#   /' "$work/ec.log"; bail "EC mailbox ec@banjarkota.go.id imported"; }
"$ME_CTL" -c "$work/base.conf" recipient import "$pki/mitra.crt.pem" "$pki/ecmitra.crt.pem" \
	>"$work/rimp.log" 2>&1
tap $? "smimectl recipient import of mitra@ (RSA) and ecmitra@ (EC) partner certificates"
# databases for the daemons: the state so far, before the offline checks
# below change the recipients
for d in d1 d2; do
	"$PY" -c 'import sqlite3, sys
s = sqlite3.connect(sys.argv[1]); d = sqlite3.connect(sys.argv[2])
s.backup(d); d.close(); s.close()' "$work/smime.db" "$work/$d.db" ||
		bail "database copy $d.db"
done
# a stranger key that is never a recipient: "other" (other@example.org)
ANDI=$(hserial "$pki/andi.crt.pem")

# rules for the offline checks (blank and comment lines so that the line
# numbers in the messages are not all the same)
conf enc <<'EOF'
# encryption rules
encrypt = (
  { recipients = [ "jabarprov.go.id" ]; mode = "opportunistic"; },

  { recipients = [ "bpk.go.id" ]; mode = "required"; },
  { recipients = [ "banjarkota.go.id" ]; mode = "opportunistic"; }
);
EOF
BPKLINE=$(grep -n '"bpk.go.id"' "$work/enc.conf" | cut -d: -f1)
conf req <<'EOF'
encrypt = (
  { recipients = [ "jabarprov.go.id", "bpk.go.id" ]; mode = "required"; }
);
EOF
"$ME_MILTER" -c "$work/enc.conf" -n >"$work/n.out" 2>&1
tap $? "smime-milter -n accepts a configuration with encrypt rules"
grep -q "2 recipient certificates" "$work/n.out"
tap $? "smime-milter -n counts the recipient certificates ($(cat "$work/n.out"))"

# ---------------------------------------------------------------- messages
# 8bit text with non-ASCII, a folded header, an encoded Subject, X- header
{
	printf '%s\r\n' "From: Andi Pratama <andi@banjarkota.go.id>" \
		"To: Mitra Jabar <mitra@jabarprov.go.id>" \
		"Subject: =?UTF-8?B?U3VyYXQgZGluYXMg4oCTIGNhZsOp?=" \
		"Date: Tue, 24 Nov 2026 10:00:00 +0700" \
		"Message-ID: <enc-text@banjarkota.go.id>" \
		"References: <a1@banjarkota.go.id>" \
		"	<a2@banjarkota.go.id>" \
		"X-Nomor-Surat: 005/123/Diskominfo/2026" \
		"MIME-Version: 1.0" \
		"Content-Type: text/plain; charset=utf-8" \
		"Content-Transfer-Encoding: 8bit" \
		"" \
		"Dengan hormat – café ✓ naïve" \
		"From the start of a line" \
		".leading dot" \
		"trailing spaces   " \
		"" \
		"Salam"
} >"$in/text.eml"
# multipart/mixed: 8bit UTF-8 text and an 8bit ISO-8859-1 attachment
{
	printf '%s\r\n' "From: Andi Pratama <andi@banjarkota.go.id>" \
		"To: mitra@jabarprov.go.id" \
		"Subject: anggaran" \
		"Message-ID: <enc-multi@banjarkota.go.id>" \
		"MIME-Version: 1.0" \
		'Content-Type: multipart/mixed; boundary="b1"' \
		"" \
		"--b1" \
		"Content-Type: text/plain; charset=utf-8" \
		"Content-Transfer-Encoding: 8bit" \
		"" \
		"Terlampir rincian – Rp 1.000.000 ✓" \
		"--b1" \
		"Content-Type: text/csv; charset=iso-8859-1; name=\"anggaran.csv\"" \
		"Content-Transfer-Encoding: 8bit" \
		"Content-Disposition: attachment; filename=\"anggaran.csv\""
	printf '\r\npos;jumlah\r\ncaf\351;12\r\nna\357ve;\2607\r\n--b1--\r\n'
} >"$in/multi.eml"
# simple ones
simple() { # simple NAME FROM TO [HEADER...]
	_f=$in/$1.eml _fr=$2 _to=$3
	shift 3
	{
		printf '%s\r\n' "From: $_fr" "To: $_to" "Subject: $(basename "$_f" .eml)" \
			"Message-ID: <$(basename "$_f" .eml)@banjarkota.go.id>" "$@"
		printf '\r\nHalo, ini surat uji.\r\n'
	} >"$_f"
}
simple plain "Andi <andi@banjarkota.go.id>" "mitra@jabarprov.go.id"

# ================================================================ (1)
tm c1 "$work/enc.conf" "$in/text.eml" -r mitra@jabarprov.go.id
if tm_ok "(1) text" c1; then
	check_enc "(1) 8bit text to mitra@" "$in/text.eml" "$out/c1.out" enveloped \
		andi@banjarkota.go.id "andi mitra"
	errhas c1 "OFFLINE: signed for andi@banjarkota.go.id with certificate $ANDI and encrypted (aes-256-cbc, 2 certificates)"
	tap $? "(1) log: signed ... and encrypted (aes-256-cbc, 2 certificates)"
	grep -q '^Content-Disposition: attachment; filename="smime.p7m"' "$out/c1.out"
	tap $? "(1) Content-Disposition: attachment; filename=\"smime.p7m\""
fi
tm c1m "$work/enc.conf" "$in/multi.eml" -r mitra@jabarprov.go.id
if tm_ok "(1) multipart" c1m; then
	check_enc "(1) multipart with an 8bit attachment" "$in/multi.eml" "$out/c1m.out" \
		enveloped andi@banjarkota.go.id "andi mitra"
fi
tm c1u "$work/enc.conf" "$in/plain.eml" -r MITRA@JabarProv.GO.ID
tm_ok "(1) upper case" c1u && [ "$(rserials "$out/c1u.out")" = "$(wserials andi mitra)" ]
tap $? "(1) an upper-case recipient address finds the certificate"
tm c1d "$work/enc.conf" "$in/plain.eml" -r mitra@jabarprov.go.id -r '<mitra@jabarprov.go.id>'
tm_ok "(1) twice" c1d && [ "$(rserials "$out/c1d.out")" = "$(wserials andi mitra)" ]
tap $? "(1) the same recipient twice: one RecipientInfo each for mitra and andi"

# ================================================================ (2)
{
	printf '%s\r\n' "From: Andi Pratama <andi@banjarkota.go.id>" \
		'To: "Dinas, Mitra" <mitra@jabarprov.go.id>' \
		"Cc: ecmitra@jabarprov.go.id (EC, partner)" \
		"Subject: to and cc" "Message-ID: <enc-tocc@banjarkota.go.id>"
	printf '\r\nHalo.\r\n'
} >"$in/tocc.eml"
tm c2 "$work/enc.conf" "$in/tocc.eml"
if tm_ok "(2) To/Cc" c2; then
	check_enc "(2) To mitra (quoted comma in the name), Cc ecmitra" "$in/tocc.eml" \
		"$out/c2.out" enveloped andi@banjarkota.go.id "andi mitra ecmitra"
	openssl cms -cmsout -print -in "$out/c2.out" >"$out/c2.print" 2>&1
	[ "$(grep -c 'd.ktri:' "$out/c2.print")" = 2 ] &&
		[ "$(grep -c 'd.kari:' "$out/c2.print")" = 1 ] &&
		grep -q 'algorithm: dhSinglePass-stdDH-sha256kdf-scheme' "$out/c2.print" &&
		grep -q 'id-aes256-wrap' "$out/c2.print"
	tap $? "(2) two RSA key transport RecipientInfos and one EC key agreement (dhSinglePass-stdDH-sha256kdf-scheme, AES-256 wrap)"
fi
{
	printf '%s\r\n' "From: Andi Pratama <andi@banjarkota.go.id>" \
		"To: mitra@jabarprov.go.id" "Bcc: tanpa@jabarprov.go.id" \
		"Subject: bcc" "Message-ID: <enc-bcc@banjarkota.go.id>"
	printf '\r\nHalo.\r\n'
} >"$in/bcc.eml"
tm c2b "$work/enc.conf" "$in/bcc.eml"
signed_only_logged c2b "(2) Bcc" "(2) Bcc tanpa@ without a certificate (opportunistic)" \
	"signed for andi@banjarkota.go.id with certificate $ANDI, not encrypted (opportunistic): no valid certificate for tanpa@jabarprov.go.id" "(2) log: not encrypted (opportunistic): no valid certificate for tanpa@jabarprov.go.id"
{
	printf '%s\r\n' "From: Andi Pratama <andi@banjarkota.go.id>" \
		"To: undisclosed-recipients:;" "Bcc: mitra@jabarprov.go.id" \
		"Subject: group" "Message-ID: <enc-group@banjarkota.go.id>"
	printf '\r\nHalo.\r\n'
} >"$in/group.eml"
tm c2g "$work/enc.conf" "$in/group.eml"
tm_ok "(2) group" c2g && [ "$(rserials "$out/c2g.out")" = "$(wserials andi mitra)" ]
tap $? "(2) To: undisclosed-recipients:; with Bcc mitra@: encrypted to mitra and andi"

# ================================================================ (3)
tm c3 "$work/enc.conf" "$in/plain.eml" -r auditor@bpk.go.id -r mitra@jabarprov.go.id
errhas c3 "smime-milter: recipient auditor@bpk.go.id refused: 550 5.7.1 encryption to auditor@bpk.go.id is required (policy rule at $work/enc.conf:$BPKLINE), but no valid certificate of auditor@bpk.go.id is known"
tap $? "(3) auditor@ (required, no certificate) refused: 550 5.7.1 ... rule at enc.conf:$BPKLINE" || showerr c3
if tm_ok "(3) the others" c3; then
	check_enc "(3) the message still goes to mitra@" "$in/plain.eml" "$out/c3.out" \
		enveloped andi@banjarkota.go.id "andi mitra"
fi
tm c3o "$work/enc.conf" "$in/plain.eml" -r auditor@bpk.go.id
[ "$TRC" = 69 ] && [ ! -s "$out/c3o.out" ] && errhas c3o "recipient auditor@bpk.go.id refused: 550 5.7.1"
tap $? "(3) only refused recipients: exit 69 (EX_UNAVAILABLE), nothing on stdout (exit $TRC)" || showerr c3o
simple toaud "Andi <andi@banjarkota.go.id>" "Auditor <auditor@bpk.go.id>"
tm c3h "$work/enc.conf" "$in/toaud.eml"
[ "$TRC" = 69 ] && [ ! -s "$out/c3h.out" ] && errhas c3h "recipient auditor@bpk.go.id refused: 550 5.7.1"
tap $? "(3) the same with the recipient from the To header (exit $TRC)" || showerr c3h

# ================================================================ (4)
simple tamu "Tamu <tamu@banjarkota.go.id>" "mitra@jabarprov.go.id"
tm c4 "$work/req.conf" "$in/tamu.eml" -r mitra@jabarprov.go.id
[ "$TRC" = 69 ] && [ ! -s "$out/c4.out" ] &&
	grep -q '^smime-milter: rejected: 550 5.7.1 .*encryption.*tamu@banjarkota.go.id' "$out/c4.err"
tap $? "(4) required recipient with a certificate, sender without one: whole message refused (550 5.7.1, encryption), nothing on stdout (exit $TRC)" || showerr c4
tm c4c "$work/enc.conf" "$in/tamu.eml" -r mitra@jabarprov.go.id
[ "$TRC" = 0 ] && "$PY" "$SC" same-body "$in/tamu.eml" "$out/c4c.out" >/dev/null
tap $? "(4) control: the same under an opportunistic rule passes unsigned (on_no_certificate = accept)"
simple ecs "EC <ec@banjarkota.go.id>" "mitra@jabarprov.go.id"
tm c4e "$work/enc.conf" "$in/ecs.eml" -r mitra@jabarprov.go.id
if tm_ok "(4) EC sender" c4e; then
	check_signed_only "(4) sender ec@ whose certificate cannot receive encryption (opportunistic)" "$out/c4e.out"
	errhas c4e "not encrypted (opportunistic): no valid certificate for the sender (certificate $(hserial "$pki/ec.crt.pem") does not allow encryption)"
	tap $? "(4) log names the sender's certificate as the reason" || showerr c4e
fi
tm c4f "$work/req.conf" "$in/ecs.eml" -r mitra@jabarprov.go.id
[ "$TRC" = 69 ] && [ ! -s "$out/c4f.out" ] && errhas c4f "does not allow encryption"
tap $? "(4) the same sender to a required recipient: refused, nothing on stdout (exit $TRC)" || showerr c4f
tm c4n "$work/req.conf" "$in/plain.eml" -r mitra@jabarprov.go.id -r someone@example.org
[ "$TRC" = 69 ] && [ ! -s "$out/c4n.out" ] &&
	grep -q '^smime-milter: rejected: 550 5.7.1 .*no valid certificate is known for someone@example.org' "$out/c4n.err"
tap $? "(4) required mitra@ beside someone@example.org without a certificate: whole message refused, naming it (exit $TRC)" || showerr c4n
simple foreign "Relay <relay@example.net>" "mitra@jabarprov.go.id"
tm c4x "$work/req.conf" "$in/foreign.eml" -r mitra@jabarprov.go.id
[ "$TRC" = 69 ] && [ ! -s "$out/c4x.out" ] && errhas c4x "encryption"
tap $? "(4) From a domain the milter does not sign for, to a required recipient: refused (exit $TRC)" || showerr c4x
# on_error = "accept" must not let mail to a required recipient out in clear
# (the milter failing on a message with more than 1000 Content-* fields).
{
	grep '^encrypt = \|^  \|^);' "$work/req.conf" | conf oerr 'on_error = "accept";'
	{
		printf 'From: andi@banjarkota.go.id\r\nTo: mitra@jabarprov.go.id\r\nSubject: many\r\n'
		i=0
		while [ $i -lt 1001 ]; do
			printf 'Content-X-%d: y\r\n' $i
			i=$((i + 1))
		done
		printf '\r\nRahasia negara.\r\n'
	} >"$in/many.eml"
	tm c4m "$work/oerr.conf" "$in/many.eml" -r mitra@jabarprov.go.id
	[ "$TRC" != 0 ] && ! grep -q 'Rahasia negara' "$out/c4m.out"
	tap $? "(4) on_error = accept, the filter fails on a message to a required recipient: not passed in clear (exit $TRC)" ||
		showerr c4m
	errhas c4m "on_error = accept does not apply"
	tap $? "(4) ... and the reason says why on_error = accept was not applied" || showerr c4m
}
# client-signed (detached and opaque), client-encrypted
printf 'Content-Type: text/plain; charset=us-ascii\r\n\r\nSudah ditandatangani.\r\n' >"$work/body.txt"
sign_as andi "andi@banjarkota.go.id" "mitra@jabarprov.go.id" "signed" "$work/body.txt" "$in/csig.eml"
tm c4s "$work/req.conf" "$in/csig.eml" -r mitra@jabarprov.go.id
[ "$TRC" = 69 ] && [ ! -s "$out/c4s.out" ] && grep -q 'rejected: 550 5.7.1 .*encryption.*already S/MIME signed' "$out/c4s.err"
tap $? "(4) a message the client signed (multipart/signed) to a required recipient: refused (exit $TRC)" || showerr c4s
sign_as andi "andi@banjarkota.go.id" "mitra@jabarprov.go.id" "opaque" "$work/body.txt" "$in/copq.eml" opaque
tm c4q "$work/req.conf" "$in/copq.eml" -r mitra@jabarprov.go.id
[ "$TRC" = 69 ] && [ ! -s "$out/c4q.out" ]
tap $? "(4) an opaque-signed one (pkcs7-mime; smime-type=signed-data): refused too (exit $TRC)" || showerr c4q
openssl cms -encrypt -aes256 -in "$work/body.txt" "$pki/mitra.crt.pem" >"$work/cenc.tmp"
{ printf 'From: andi@banjarkota.go.id\r\nTo: mitra@jabarprov.go.id\r\nSubject: enc\r\n'; cat "$work/cenc.tmp"; } >"$in/cenc.eml"
grep -q '^Content-Type: application/pkcs7-mime; smime-type=enveloped-data' "$in/cenc.eml" ||
	echo "# openssl made no enveloped-data message: $(grep -i ^content-type "$in/cenc.eml")"
tm c4v "$work/req.conf" "$in/cenc.eml" -r mitra@jabarprov.go.id
[ "$TRC" = 0 ] && cmp -s "$in/cenc.eml" "$out/c4v.out"
tap $? "(4) an already encrypted message (enveloped-data) to a required recipient passes byte for byte (exit $TRC)" || showerr c4v
sed 's#^Content-Type: application/pkcs7-mime#Content-Type: application/x-pkcs7-mime#' "$in/cenc.eml" >"$in/cencx.eml"
tm c4w "$work/req.conf" "$in/cencx.eml" -r mitra@jabarprov.go.id
[ "$TRC" = 0 ] && cmp -s "$in/cencx.eml" "$out/c4w.out"
tap $? "(4) the same as application/x-pkcs7-mime passes too (exit $TRC)" || showerr c4w
{
	printf '%s\r\n' "From: andi@banjarkota.go.id" "To: mitra@jabarprov.go.id" "Subject: pgp" \
		"MIME-Version: 1.0" \
		'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="p"' \
		"" "--p" "Content-Type: application/pgp-encrypted" "" "Version: 1" "--p" \
		"Content-Type: application/octet-stream" "" "-----BEGIN PGP MESSAGE-----" \
		"hQEMA1234" "-----END PGP MESSAGE-----" "--p--"
} >"$in/pgp.eml"
tm c4p "$work/req.conf" "$in/pgp.eml" -r mitra@jabarprov.go.id
[ "$TRC" = 0 ] && cmp -s "$in/pgp.eml" "$out/c4p.out"
tap $? "(4) PGP/MIME (multipart/encrypted) to a required recipient passes byte for byte (exit $TRC)" || showerr c4p

# ================================================================ (5)
conf spec <<'EOF'
encrypt = (
  { recipients = [ "bpk.go.id" ]; mode = "required"; },
  { recipients = [ "*" ]; mode = "opportunistic"; },
  { recipients = [ "auditor@bpk.go.id", "mitra@jabarprov.go.id" ]; mode = "never"; },
  { recipients = [ "*.go.id" ]; mode = "required"; },
  { recipients = [ "example.org" ]; senders = [ "sekda@banjarkota.go.id" ]; mode = "required"; },
  { recipients = [ "jabarprov.go.id" ]; mode = "opportunistic"; },
  { recipients = [ "example.org" ]; mode = "never"; }
);
EOF
tm c5a "$work/spec.conf" "$in/plain.eml" -r auditor@bpk.go.id
if tm_ok "(5) address never over domain required" c5a; then
	check_signed_only "(5) auditor@: address rule never beats domain rule required (no certificate, not refused)" "$out/c5a.out"
fi
tm c5b "$work/spec.conf" "$in/plain.eml" -r pemeriksa@bpk.go.id
[ "$TRC" = 69 ] && errhas c5b "recipient pemeriksa@bpk.go.id refused: 550 5.7.1"
tap $? "(5) control: pemeriksa@bpk.go.id (domain rule required) is refused (exit $TRC)" || showerr c5b
tm c5c "$work/spec.conf" "$in/plain.eml" -r mitra@jabarprov.go.id
if tm_ok "(5) never with a certificate" c5c; then
	check_signed_only "(5) mitra@ has a certificate, but its address rule never beats domain opportunistic" "$out/c5c.out"
	! errhas c5c "not encrypted"
	tap $? "(5) ... and no opportunistic note in the log" || showerr c5c
fi
tm c5d "$work/spec.conf" "$in/plain.eml" -r ecmitra@jabarprov.go.id
tm_ok "(5) ecmitra" c5d && [ "$(rserials "$out/c5d.out")" = "$(wserials andi ecmitra)" ]
tap $? "(5) control: ecmitra@ (domain opportunistic, certificate) is encrypted"
tm c5e "$work/spec.conf" "$in/plain.eml" -r tanpa@jabarprov.go.id
signed_only_logged c5e "(5) domain over wildcard" "(5) tanpa@jabarprov.go.id: domain opportunistic beats *.go.id required" \
	"not encrypted (opportunistic): no valid certificate for tanpa@jabarprov.go.id" "(5) ... logged as opportunistic without certificate"
tm c5f "$work/spec.conf" "$in/plain.eml" -r kepala@kemenkeu.go.id
[ "$TRC" = 69 ] && errhas c5f "recipient kepala@kemenkeu.go.id refused: 550 5.7.1"
tap $? "(5) kepala@kemenkeu.go.id: *.go.id required beats * opportunistic, refused (exit $TRC)" || showerr c5f
tm c5g "$work/spec.conf" "$in/plain.eml" -r x@example.net
signed_only_logged c5g "(5) wildcard *" "(5) x@example.net: only * (opportunistic) matches" \
	"no valid certificate for x@example.net" "(5) ... logged as opportunistic without certificate"
simple sekda "Sekda <sekda@banjarkota.go.id>" "x@example.org"
tm c5h "$work/spec.conf" "$in/sekda.eml" -s sekda@banjarkota.go.id -r x@example.org -r mitra@jabarprov.go.id
errhas c5h "recipient x@example.org refused: 550 5.7.1 encryption to x@example.org is required"
tap $? "(5) senders-limited rule: from sekda@ (MAIL FROM sekda@), x@example.org is refused" || showerr c5h
tm c5i "$work/spec.conf" "$in/plain.eml" -s andi@banjarkota.go.id -r x@example.org
if tm_ok "(5) senders-limited other sender" c5i; then
	check_signed_only "(5) ... from andi@ the rule does not apply: example.org never" "$out/c5i.out"
	! errhas c5i "not encrypted"
	tap $? "(5) ... never (the domain rule), not * opportunistic: no note in the log" || showerr c5i
fi
tm c5j "$work/spec.conf" "$in/sekda.eml" -r x@example.org
[ "$TRC" = 69 ] && [ ! -s "$out/c5j.out" ] && errhas c5j "encryption to x@example.org is required"
tap $? "(5) from sekda@ with an empty envelope sender: refused at end of headers from the From address (exit $TRC)" || showerr c5j
conf norule <<'EOF'
encrypt = ( { recipients = [ "bpk.go.id" ]; mode = "required"; } );
EOF
tm c5k "$work/norule.conf" "$in/plain.eml" -r mitra@jabarprov.go.id
if tm_ok "(5) no rule" c5k; then
	check_signed_only "(5) no rule for mitra@ (who has a certificate)" "$out/c5k.out"
	errhas c5k "signed for andi@banjarkota.go.id with certificate $ANDI (" && ! errhas c5k "encrypt"
	tap $? "(5) ... plain signing log line" || showerr c5k
fi
tm c5l "$work/enc.conf" "$in/plain.eml" -r mitra@jabarprov.go.id -r someone@example.org
signed_only_logged c5l "(5) opportunistic + no-rule recipient" "(5) mitra@ (opportunistic) with someone@example.org (no rule, no certificate)" \
	"no valid certificate for someone@example.org" "(5) ... the log names someone@example.org"

# ================================================================ (6)
for v in "gcm256 aes-256-gcm authEnveloped aes-256-gcm rsaEncryption encrypt_cipher" \
	"gcm128 aes-128-gcm authEnveloped aes-128-gcm rsaEncryption encrypt_cipher" \
	"cbc128 aes-128-cbc enveloped aes-128-cbc rsaEncryption encrypt_cipher" \
	"oaep oaep enveloped aes-256-cbc rsaesOaep encrypt_rsa_padding"; do
	# shellcheck disable=SC2086
	set -- $v
	grep '^encrypt = \|^  \|^);' "$work/enc.conf" | conf "$1" "$6 = \"$2\";"
	tm "c6$1" "$work/$1.conf" "$in/text.eml" -r mitra@jabarprov.go.id
	if tm_ok "(6) $6 = $2" "c6$1"; then
		check_enc "(6) $6 = \"$2\"" "$in/text.eml" "$out/c6$1.out" "$3" \
			andi@banjarkota.go.id "andi mitra" "$4" "$5"
	fi
done
[ "$(grep -c 'OBJECT *:sha256$' "$out/c6oaep.out.print")" = 4 ] &&
	[ "$(grep -c 'OBJECT *:mgf1$' "$out/c6oaep.out.print")" = 2 ]
tap $? "(6) RSA-OAEP parameters of both recipients: SHA-256, MGF1 with SHA-256" ||
	sed -n '/rsaesOaep/,/encryptedKey/p' "$out/c6oaep.out.print" | sed 's/^/#   /' | head -14
tm c6o "$work/oaep.conf" "$in/tocc.eml"
tm_ok "(6) OAEP + EC" c6o && [ "$(rserials "$out/c6o.out")" = "$(wserials andi mitra ecmitra)" ] &&
	dec "$out/c6o.out" ecmitra && dec "$out/c6o.out" mitra
tap $? "(6) RSA-OAEP with an EC recipient beside: decrypts with ecmitra's and mitra's keys"
tm c6e "$work/gcm256.conf" "$in/tocc.eml"
tm_ok "(6) GCM + EC" c6e && dec "$out/c6e.out" ecmitra &&
	openssl cms -cmsout -print -in "$out/c6e.out" 2>/dev/null | grep -q 'd.kari:'
tap $? "(6) AES-256-GCM to an EC recipient decrypts with ecmitra's key"
for bad in 'encrypt_cipher = "des-ede3-cbc";' 'encrypt_rsa_padding = "pss";' \
	'encrypt = ( { recipients = [ "bpk.go.id" ]; mode = "sometimes"; } );' \
	'encrypt = ( { mode = "required"; } );'; do
	conf bad "$bad" </dev/null
	"$ME_MILTER" -c "$work/bad.conf" -n >"$work/bad.out" 2>&1
	rc=$?
	[ $rc -ne 0 ] && grep -q "bad.conf:[0-9]" "$work/bad.out"
	tap $? "(6) -n refuses $bad with file:line (exit $rc)" || sed 's/^/#   /' "$work/bad.out"
done

# ================================================================ (7)
# revoked: usable before the CRL is imported, never after
"$ME_CTL" -c "$work/enc.conf" recipient import "$pki/revmitra.crt.pem" >"$work/rev.log" 2>&1
tap $? "(7) revmitra@ imported (its CRL is not known yet)"
tm c7a "$work/enc.conf" "$in/plain.eml" -r revmitra@jabarprov.go.id
tm_ok "(7) revmitra before CRL" c7a && [ "$(rserials "$out/c7a.out")" = "$(wserials andi revmitra)" ]
tap $? "(7) control: before the CRL, revmitra@ gets encrypted mail"
"$ME_CTL" -c "$work/enc.conf" crl import "$pki/crl.pem" >"$work/crl.log" 2>&1
tap $? "(7) smimectl crl import crl.pem ($(head -1 "$work/crl.log"))"
"$ME_CTL" -c "$work/enc.conf" recipient list --address revmitra@jabarprov.go.id >"$work/rl.out" 2>&1
grep -q 'revmitra@jabarprov.go.id .* revoked ' "$work/rl.out"
tap $? "(7) recipient list shows revmitra@ revoked" || sed 's/^/#   /' "$work/rl.out"
tm c7b "$work/enc.conf" "$in/plain.eml" -r revmitra@jabarprov.go.id
signed_only_logged c7b "(7) revmitra after CRL" "(7) revoked revmitra@ (opportunistic) is never used" \
	"no valid certificate for revmitra@jabarprov.go.id" "(7) ... the log names revmitra@"
# import refuses what cannot be used
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$pki/fremd.key.pem" -out "$pki/fremd.crt.pem" \
	-days 30 -subj "/CN=Fremd" -addext "subjectAltName=email:fremd@jabarprov.go.id" \
	-addext "keyUsage=critical,digitalSignature,keyEncipherment" \
	-addext "extendedKeyUsage=emailProtection" >/dev/null 2>&1
for c in "expired:expired" "signonly:no keyEncipherment" "serveronly:EKU serverAuth only" \
	"future:not yet valid" "fremd:self-signed, not under ca_file"; do
	nm=${c%%:*}
	"$ME_CTL" -c "$work/enc.conf" recipient import "$pki/$nm.crt.pem" >"$work/imp.$nm" 2>&1
	rc=$?
	addr=$(openssl x509 -in "$pki/$nm.crt.pem" -noout -email | head -1)
	"$ME_CTL" -c "$work/enc.conf" recipient list --address "$addr" --json >"$work/rl.$nm" 2>&1
	[ $rc -ne 0 ] && grep -q refused "$work/imp.$nm" && ! grep -q '"address"' "$work/rl.$nm"
	tap $? "(7) recipient import refuses $nm ($addr: ${c#*:}; exit $rc), nothing stored" ||
		sed 's/^/#   /' "$work/imp.$nm" "$work/rl.$nm"
done
tm c7c "$work/enc.conf" "$in/plain.eml" -r signonly@jabarprov.go.id
tm_ok "(7) signonly" c7c; check_signed_only "(7) signonly@ (import refused) gets signed only" "$out/c7c.out"
# expired / not yet valid rows in the database (as if imported while
# valid) are not used; a valid row written the same way is (control)
dbrow() { # dbrow ADDRESS CERTNAME
	"$PY" - "$work/smime.db" "$1" "$pki/$2.crt.pem" <<'EOF'
import calendar, sqlite3, subprocess, sys, time
db, addr, pem = sys.argv[1:]
def x(*a):
    return subprocess.run(["openssl", "x509", "-in", pem, "-noout"] + list(a),
                          capture_output=True, text=True).stdout.strip()
ser = x("-serial").split("=", 1)[1]
fpr = x("-fingerprint", "-sha256").split("=", 1)[1].replace(":", "")
def t(opt):
    s = x(opt).split("=", 1)[1]
    return calendar.timegm(time.strptime(s.replace(" GMT", ""), "%b %d %H:%M:%S %Y"))
c = sqlite3.connect(db)
c.execute("INSERT INTO recipient_certs (address, subject, issuer, serial, fingerprint,"
          " not_before, not_after, status, source, cert_pem, created_at)"
          " VALUES (?, ?, ?, ?, ?, ?, ?, 'active', 'import', ?, ?)",
          (addr, x("-subject"), x("-issuer"), ser, fpr, t("-startdate"), t("-enddate"),
           open(pem).read(), int(time.time())))
c.commit()
EOF
}
dbrow kontrol@jabarprov.go.id sekda && dbrow lama@jabarprov.go.id expired &&
	dbrow baru@jabarprov.go.id future
tap $? "(7) rows written straight into recipient_certs: kontrol@ (valid), lama@ (expired), baru@ (not yet valid)"
tm c7d "$work/enc.conf" "$in/plain.eml" -r kontrol@jabarprov.go.id
tm_ok "(7) kontrol" c7d && dec "$out/c7d.out" sekda
tap $? "(7) control: the valid row is used (decrypts with its key)"
tm c7e "$work/enc.conf" "$in/plain.eml" -r lama@jabarprov.go.id
tm_ok "(7) lama" c7e; check_signed_only "(7) an expired certificate in the database is never used" "$out/c7e.out"
tm c7f "$work/enc.conf" "$in/plain.eml" -r baru@jabarprov.go.id
tm_ok "(7) baru" c7f; check_signed_only "(7) a not yet valid certificate in the database is not used" "$out/c7f.out"
# two valid certificates for mitra@: the newer one
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/mitra2.key.pem" 2>/dev/null
openssl req -new -key "$pki/mitra2.key.pem" -subj "/C=ID/O=Partner Agency/CN=Mitra Jabar Baru" \
	-out "$work/mitra2.csr" 2>/dev/null
cat >"$work/ext_leaf.cnf" <<'EOF'
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = emailProtection
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = email:mitra@jabarprov.go.id
EOF
openssl x509 -req -in "$work/mitra2.csr" -CA "$pki/inter.crt.pem" -CAkey "$pki/inter.key.pem" \
	-set_serial 0x3A01 -days 365 -extfile "$work/ext_leaf.cnf" -out "$pki/mitra2.crt.pem" \
	>/dev/null 2>&1 &&
	"$ME_CTL" -c "$work/enc.conf" recipient import "$pki/mitra2.crt.pem" >"$work/m2.log" 2>&1
tap $? "(7) a second, newer certificate for mitra@ (new key, serial 3A01) imported"
tm c7g "$work/enc.conf" "$in/text.eml" -r mitra@jabarprov.go.id
if tm_ok "(7) newest" c7g; then
	check_enc "(7) two certificates for mitra@" "$in/text.eml" "$out/c7g.out" enveloped \
		andi@banjarkota.go.id "andi mitra2"
	! dec "$out/c7g.out" mitra
	tap $? "(7) the older mitra@ key does not decrypt it"
fi
"$ME_CTL" -c "$work/enc.conf" recipient remove mitra@jabarprov.go.id >"$work/rm.log" 2>&1 &&
	"$ME_CTL" -c "$work/enc.conf" recipient list --address mitra@jabarprov.go.id --json >"$work/rm.list" 2>&1 &&
	! grep -q '"address"' "$work/rm.list"
tap $? "(7) smimectl recipient remove mitra@jabarprov.go.id ($(head -1 "$work/rm.log"))"
tm c7h "$work/enc.conf" "$in/plain.eml" -r mitra@jabarprov.go.id
signed_only_logged c7h "(7) removed" "(7) after remove, mitra@ falls back to signed only" \
	"no valid certificate for mitra@jabarprov.go.id" "(7) ... the log names mitra@"

# ================================================================ (8)
# Outbound encryption never encrypts to a recipient in `domains` (issue 13):
# the city's keys are on the gateway, so an internal mailbox could not read
# it, whatever the rules say (enc.conf has banjarkota.go.id opportunistic).
tm c8 "$work/enc.conf" "$in/text.eml" -r sekda@banjarkota.go.id
if tm_ok "(8) sekda" c8; then
	check_signed_only "(8) internal mailbox sekda@ (mapped certificate, rule banjarkota.go.id): signed only" "$out/c8.out"
	errhas c8 "OFFLINE: signed for andi@banjarkota.go.id with certificate $ANDI" && ! errhas c8 "encrypted"
	tap $? "(8) ... the log says signed, and nothing about encryption" || showerr c8
fi
tm c8l "$work/enc.conf" "$in/plain.eml" -r legacy@banjarkota.go.id
tm_ok "(8) legacy" c8l && check_signed_only "(8) legacy@ (address only in the subject emailAddress) is internal: signed only" "$out/c8l.out"
tm c8a "$work/enc.conf" "$in/plain.eml" -r andi@banjarkota.go.id
tm_ok "(8) self" c8a && check_signed_only "(8) to the sender itself: signed only, not encrypted" "$out/c8a.out"
tm c8e "$work/enc.conf" "$in/plain.eml" -r ec@banjarkota.go.id
if tm_ok "(8) ec" c8e; then
	check_signed_only "(8) ec@'s mapped certificate does not allow encryption: signed only" "$out/c8e.out"
fi
conf all <<'EOF'
encrypt = ( { recipients = [ "*" ]; mode = "required"; } );
EOF
tm c8s "$work/all.conf" "$in/plain.eml" -r sekda@banjarkota.go.id -r legacy@banjarkota.go.id
if tm_ok "(8) all required" c8s; then
	check_signed_only "(8) rule \"*\" required, only internal recipients: signed only, not refused" "$out/c8s.out"
fi
tm c8m "$work/enc.conf" "$in/plain.eml" -r ecmitra@jabarprov.go.id -r sekda@banjarkota.go.id
signed_only_logged c8m "(8) mixed" "(8) ecmitra@ (opportunistic, certificate known) beside internal sekda@: signed only" \
	"not encrypted (opportunistic): sekda@banjarkota.go.id is an internal mailbox that could not read an encrypted copy" \
	"(8) ... the log names the internal mailbox as the reason"
tm c8q "$work/req.conf" "$in/plain.eml" -r ecmitra@jabarprov.go.id -r sekda@banjarkota.go.id
[ "$TRC" = 69 ] && [ ! -s "$out/c8q.out" ] &&
	grep -q '^smime-milter: rejected: 550 5.7.1 .*encryption to ecmitra@jabarprov.go.id is required.*sekda@banjarkota.go.id is an internal mailbox that could not read an encrypted copy: send to it in a separate message' "$out/c8q.err"
tap $? "(8) required ecmitra@ beside internal sekda@: refused, neither clear to ecmitra@ nor unreadable to sekda@ (exit $TRC)" || showerr c8q
tm c8o "$work/req.conf" "$in/plain.eml" -r ecmitra@jabarprov.go.id
tm_ok "(8) control" c8o && [ "$(rserials "$out/c8o.out")" = "$(wserials andi ecmitra)" ]
tap $? "(8) control: the same to ecmitra@ alone is encrypted to ecmitra and andi"
"$ME_CTL" -c "$work/enc.conf" revoke "$(hserial "$pki/sekda.crt.pem")" --reason keyCompromise \
	>"$work/revoke.log" 2>&1
tap $? "(8) smimectl revoke of sekda@'s certificate" || sed 's/^/#   /' "$work/revoke.log"
tm c8r "$work/enc.conf" "$in/plain.eml" -r sekda@banjarkota.go.id
tm_ok "(8) sekda revoked" c8r; check_signed_only "(8) sekda@'s revoked mapped certificate is not used" "$out/c8r.out"
ls -A "$work/tmp-enc" "$work/tmp-req" "$work/tmp-spec" "$work/tmp-all" >"$work/tmpls" 2>&1
[ -z "$(grep -v ':$' "$work/tmpls" | grep -v '^$')" ]
tap $? "(8) no temp file left by the offline runs" || sed 's/^/#   /' "$work/tmpls"
echo "# offline part: $(($(date +%s) - t0)) s"

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
[ -n "$p" ] && [ $((p & 0x8)) != 0 ] && ! grep -q 'rcpt' "$out/d9b.res"
tap $? "(9) without encrypt rules the negotiated protocol has NORCPT set ($p), no RCPT is sent" || showres d9b
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
for h in "hsignonly:signonly@jabarprov.go.id:signed by a certificate without encryption usage" \
	"htamper2:auditor@bpk.go.id:signed by auditor@, body changed after signing" \
	"hmismatch:kepala@bpk.go.id:signed by auditor@, From kepala@bpk.go.id" \
	"hrevoked:revmitra@jabarprov.go.id:signer listed in the imported CRL" \
	"hfremd:fremd@jabarprov.go.id:signer not under ca_file"; do
	nm=${h%%:*} rest=${h#*:}
	addr=${rest%%:*} why=${rest#*:}
	run "$nm" $E --client-ip 192.0.2.1 --rcpt andi@banjarkota.go.id "$in/$nm.eml" &&
		has "$nm" "m1.bodychange=0" && has "$nm" "m1.result=accept" &&
		! grep -q '^m1\.\(hdr\|other\)' "$out/$nm.res"
	tap $? "(10) inbound, $why: accepted untouched" || showres "$nm"
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
has haud1 "m1.bodychange=0" && has haud1 "m1.result=accept" && ! grep -q '^m1\.\(hdr\|other\)' "$out/haud1.res" &&
	has haud2 "m1.bodychange=0" && has haud2 "m1.result=accept"
tap $? "(10) auditor@'s signed inbound messages are accepted untouched" || { showres haud1; showres haud2; }
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
	has htamper "m1.result=accept" && [ "$(harvested auditor@bpk.go.id "$work/denc.log")" = 1 ]
tap $? "(10) the intact twin of the tampered message: accepted, the certificate is not logged again" || showres htamper
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
	has hfold "m1.result=accept" && [ "$(harvested auditor@bpk.go.id "$work/denc.log")" = 1 ]
tap $? "(10) a folded Content-Type from the same signer: accepted, not logged again" || showres hfold
H big "$work/bigb.txt" - - 24000
sign_as auditor auditor@bpk.go.id andi@banjarkota.go.id "big" "$work/bigb.txt" "$in/hbig.eml"
run hbig $E --client-ip 192.0.2.1 --rcpt andi@banjarkota.go.id "$in/hbig.eml" &&
	has hbig "m1.result=accept" && has hbig "m1.bodychange=0" &&
	[ "$(harvested auditor@bpk.go.id "$work/denc.log")" = 1 ]
tap $? "(10) a large signed inbound message (spooled) is accepted untouched, not logged again" || showres hbig
# harvest = false
run hnoh --socket "inet:$port_n@127.0.0.1" --client-ip 192.0.2.1 --rcpt andi@banjarkota.go.id "$in/haud.eml" &&
	has hnoh "m1.result=accept" && has hnoh "m1.bodychange=0"
tap $? "(10) harvest = false: the signed inbound message passes untouched" || showres hnoh
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
