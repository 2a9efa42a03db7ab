# tests/lib/encrypt.sh -- what the encryption tests share
# (tests/milter/encrypt.sh: smime-milter -t; tests/milter/encrypt-daemon.sh:
# the daemon over the milter protocol).  Source it after
# tests/lib/fixture.sh.  The openssl CLI is the independent decrypter and
# verifier.
#
#   enc_begin NAME     fx_begin NAME; bails unless openssl is installed;
#                      $pki, $in, $out; $work/enc.py (H); $work/base.conf;
#                      the test PKI, `smimectl init` and the mailboxes andi,
#                      sekda, noreply, legacy (me_setup) and ec (bails if
#                      they fail); $ANDI (andi's hex serial); the messages
#                      $in/plain.eml, toaud, tamu, foreign and sekda (simple)
#   enc_partners       smimectl recipient import of mitra@ (RSA) and
#                      ecmitra@ (EC) into $work/smime.db; its status
#   enc_fremd          $pki/fremd.{key,crt}.pem: self-signed, not under
#                      ca_file, for fremd@jabarprov.go.id
#   enc_mitra2         $pki/mitra2.{key,crt}.pem: a second, newer
#                      certificate of mitra@ (new key, serial 3A01); the
#                      status of its signing
#   H CMD ARGS...      enc.py: outer ORIG RESULT KIND (the encrypted outside),
#                      rebuild RESULT DECRYPTED TARGET, ctype FILE,
#                      big PATH FROM TO NLINES, same A B
#   dserial, hserial CERT   decimal / hex serial of a certificate
#   rserials FILE      the sorted serials of FILE's RecipientInfos
#   wserials NAME...   the sorted serials of $pki/NAME.crt.pem...
#   dec FILE NAME      decrypts FILE with NAME's key into FILE.dec.NAME
#   check_enc, check_signed_only   (below)
#   conf NAME [EXTRA-LINE...]      $work/NAME.conf, rules on stdin
#   sign_as ...        a message signed by openssl with a partner's key
#   simple NAME FROM TO [HEADER...]  a short $in/NAME.eml
#   tap RC TEXT        tap.sh's, but returns RC so that diagnostics can
#                      follow with ||

tap() { if [ "$1" = 0 ]; then ok "$2"; return 0; fi; nok "$2"; return 1; }

# enc__py: the message helpers in Python, as $work/enc.py
enc__py() {
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
}
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

simple() { # simple NAME FROM TO [HEADER...]
	_f=$in/$1.eml _fr=$2 _to=$3
	shift 3
	{
		printf '%s\r\n' "From: $_fr" "To: $_to" "Subject: $(basename "$_f" .eml)" \
			"Message-ID: <$(basename "$_f" .eml)@banjarkota.go.id>" "$@"
		printf '\r\nHalo, ini surat uji.\r\n'
	} >"$_f"
}

enc_begin() {
	fx_begin "$1"
	command -v openssl >/dev/null || bail "openssl is installed"
	pki=$work/pki
	in=$work/in
	out=$work/out
	mkdir -p "$in" "$out"
	enc__py
	conf base </dev/null
	me_setup "$work" "$work/base.conf" || bail "PKI built and mailboxes imported"
	"$ME_CTL" -c "$work/base.conf" import --mailbox ec@banjarkota.go.id --kind individual \
		--p12 "$pki/ec.p12" --passphrase-file "$pki/ec.pass" >"$work/ec.log" 2>&1 ||
		{ sed 's/^/#   /' "$work/ec.log"; bail "EC mailbox ec@banjarkota.go.id imported"; }
	# a stranger key that is never a recipient: "other" (other@example.org)
	ANDI=$(hserial "$pki/andi.crt.pem")
	simple plain "Andi <andi@banjarkota.go.id>" "mitra@jabarprov.go.id"
	simple toaud "Andi <andi@banjarkota.go.id>" "Auditor <auditor@bpk.go.id>"
	simple tamu "Tamu <tamu@banjarkota.go.id>" "mitra@jabarprov.go.id"
	simple foreign "Relay <relay@example.net>" "mitra@jabarprov.go.id"
	simple sekda "Sekda <sekda@banjarkota.go.id>" "x@example.org"
}

enc_partners() {
	"$ME_CTL" -c "$work/base.conf" recipient import "$pki/mitra.crt.pem" "$pki/ecmitra.crt.pem" \
		>"$work/rimp.log" 2>&1
}

enc_fremd() {
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$pki/fremd.key.pem" -out "$pki/fremd.crt.pem" \
		-days 30 -subj "/CN=Fremd" -addext "subjectAltName=email:fremd@jabarprov.go.id" \
		-addext "keyUsage=critical,digitalSignature,keyEncipherment" \
		-addext "extendedKeyUsage=emailProtection" >/dev/null 2>&1
}

enc_mitra2() {
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
		>/dev/null 2>&1
}
