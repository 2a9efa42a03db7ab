#!/bin/sh
# tests/fuzz/mkseeds-inbound.sh ENV OUT -- the seeds of fuzz_inbound, made
# with the openssl CLI for the keys of the fuzz environment ENV (made by
# tests/fuzz/mkenv.sh: a fresh PKI each time, so the seeds cannot be kept
# in git and still decrypt).  Also imports ENV/pki/crl.der into ENV's
# database, so a revoked signer is seen as revoked.  Writes OUT/i-*.eml
# (about 40 small messages, all to andi@ unless said otherwise):
#   encrypted  AES-256-CBC, AES-128-CBC, 3DES, AES-256-GCM, RSA-OAEP,
#              subjectKeyIdentifier, to ec@ (ECDH), to sekda@ (PEM key),
#              to andi and a partner, x-pkcs7-mime, no smime-type, binary
#              DER, to a partner only; to andi + budi and to andi +
#              sekda (both have keys) when only andi is a recipient
#   signed     multipart/signed by mitra@jabarprov.go.id: good, tampered,
#              From not the signer, revoked signer, unknown CA,
#              x-pkcs7-signature; opaque signed-data
#   both       signed-then-encrypted (CBC, GCM, tampered before
#              encryption), opaque signed-data then encrypted
#   broken     truncated base64 (at a line, mid-quad), a bad base64
#              character, garbage DER, absurd DER lengths, deeply nested
#              DER (enveloped and signed), deeply nested multiparts, an
#              encrypted part nested in a multipart, empty bodies, forged
#              Authentication-Results
# tests/milter/fuzz-inbound.sh names what each must give.  Needs openssl
# and python3; prints nothing on success, exits 1 on a failure.
set -eu
TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
env=$1
out=$2
pki=$env/pki
mkdir -p "$out"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fzseeds.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
ctl=${SMIMECTL:-$TOP/admin/smimectl}
"$ctl" -c "$env/m.conf" crl import "$pki/crl.der" >"$tmp/crl.log" 2>&1 || {
	cat "$tmp/crl.log" >&2
	exit 1
}

ossl() { openssl "$@" 2>"$tmp/err" || {
	echo "mkseeds-inbound.sh: openssl $*" >&2
	cat "$tmp/err" >&2
	exit 1
}; }

# hdr FROM TO SUBJECT: the outer header fields before the S/MIME ones
hdr() {
	printf 'From: %s\nTo: %s\nSubject: %s\n' "$1" "$2" "$3"
	printf 'Date: Wed, 02 Dec 2026 01:00:00 +0700\n'
	printf 'Message-ID: <%s@jabarprov.go.id>\n' "$(echo "$3" | tr -c 'a-z0-9\n' -)"
}
MITRA='Mitra <mitra@jabarprov.go.id>'
ANDI='Andi <andi@banjarkota.go.id>'

printf 'Content-Type: text/plain; charset=us-ascii\n\nHello andi,\nthe report is attached.\n' >"$tmp/in.txt"

# sign NAME KEY-NAME [openssl options]: tmp/NAME.sig, multipart/signed
sign() {
	n=$1 k=$2
	shift 2
	ossl cms -sign -signer "$pki/$k.crt.pem" -inkey "$pki/$k.key.pem" \
		-certfile "$pki/inter.crt.pem" -in "$tmp/in.txt" -out "$tmp/$n.sig" "$@"
}
# enc NAME IN [openssl options] RECIP-CERT...: tmp/NAME.p7m (S/MIME)
enc() {
	n=$1 i=$2
	shift 2
	ossl cms -encrypt -in "$i" -out "$tmp/$n.p7m" "$@"
}
# seed NAME FROM TO FILE: OUT/i-NAME.eml = the header + FILE
seed() {
	{
		hdr "$2" "$3" "$1"
		cat "$4"
	} >"$out/i-$1.eml"
}

a=$pki/andi.crt.pem
enc cbc "$tmp/in.txt" -aes-256-cbc "$a"
seed enc-cbc "$MITRA" "$ANDI" "$tmp/cbc.p7m"
enc aes128 "$tmp/in.txt" -aes-128-cbc "$a"
seed enc-aes128 "$MITRA" "$ANDI" "$tmp/aes128.p7m"
enc des3 "$tmp/in.txt" -des3 "$a"
seed enc-3des "$MITRA" "$ANDI" "$tmp/des3.p7m"
enc gcm "$tmp/in.txt" -aes-256-gcm "$a"
seed enc-gcm "$MITRA" "$ANDI" "$tmp/gcm.p7m"
enc oaep "$tmp/in.txt" -aes-256-cbc -recip "$a" -keyopt rsa_padding_mode:oaep
seed enc-oaep "$MITRA" "$ANDI" "$tmp/oaep.p7m"
enc ski "$tmp/in.txt" -aes-256-cbc -keyid "$a"
seed enc-ski "$MITRA" "$ANDI" "$tmp/ski.p7m"
enc ec "$tmp/in.txt" -aes-256-cbc "$pki/ec.crt.pem"
seed enc-ec "$MITRA" "ec@banjarkota.go.id" "$tmp/ec.p7m"
enc sekda "$tmp/in.txt" -aes-256-gcm "$pki/sekda.crt.pem"
seed enc-sekda "$MITRA" "sekda@banjarkota.go.id" "$tmp/sekda.p7m"
enc two "$tmp/in.txt" -aes-256-cbc "$pki/mitra.crt.pem" "$a"
seed enc-two-recips "$MITRA" "$ANDI" "$tmp/two.p7m"
seed enc-andi-budi "$MITRA" "$ANDI, budi@banjarkota.go.id" "$tmp/cbc.p7m"
seed enc-andi-sekda "$MITRA" "$ANDI, sekda@banjarkota.go.id" "$tmp/cbc.p7m"
enc partner "$tmp/in.txt" -aes-256-cbc "$pki/mitra.crt.pem"
seed enc-not-to-us "$MITRA" "$ANDI" "$tmp/partner.p7m"
sed 's/application\/pkcs7-mime/application\/x-pkcs7-mime/' "$tmp/cbc.p7m" >"$tmp/x.p7m"
seed enc-x-pkcs7 "$MITRA" "$ANDI" "$tmp/x.p7m"
sed 's/ smime-type=enveloped-data;//' "$tmp/cbc.p7m" >"$tmp/nost.p7m"
seed enc-no-smime-type "$MITRA" "$ANDI" "$tmp/nost.p7m"
ossl cms -encrypt -in "$tmp/in.txt" -aes-256-cbc -outform DER -out "$tmp/cbc.der" "$a"
{
	printf 'MIME-Version: 1.0\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\n'
	printf 'Content-Transfer-Encoding: binary\n\n'
	cat "$tmp/cbc.der"
} >"$tmp/bin.p7m"
seed enc-binary "$MITRA" "$ANDI" "$tmp/bin.p7m"

# signed by the partner
sign good mitra
seed signed "$MITRA" "$ANDI" "$tmp/good.sig"
sed 's/^Hello andi,/Hello budi,/' "$tmp/good.sig" >"$tmp/tampered.sig"
seed signed-tampered "$MITRA" "$ANDI" "$tmp/tampered.sig"
seed signed-other-from "Lain <lain@jabarprov.go.id>" "$ANDI" "$tmp/good.sig"
sign revoked revmitra
seed signed-revoked "Rev <revmitra@jabarprov.go.id>" "$ANDI" "$tmp/revoked.sig"
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
	-subj /CN=fremd -addext subjectAltName=email:fremd@jabarprov.go.id \
	-addext extendedKeyUsage=emailProtection \
	-keyout "$tmp/fremd.key" -out "$tmp/fremd.crt"
ossl cms -sign -signer "$tmp/fremd.crt" -inkey "$tmp/fremd.key" \
	-in "$tmp/in.txt" -out "$tmp/fremd.sig"
seed signed-unknown-ca "Fremd <fremd@jabarprov.go.id>" "$ANDI" "$tmp/fremd.sig"
sed 's/application\/pkcs7-signature/application\/x-pkcs7-signature/g' "$tmp/good.sig" >"$tmp/xsig.sig"
seed signed-x-pkcs7 "$MITRA" "$ANDI" "$tmp/xsig.sig"
sign opaque mitra -nodetach
seed opaque "$MITRA" "$ANDI" "$tmp/opaque.sig"

# signed, then encrypted
enc se "$tmp/good.sig" -aes-256-cbc "$a"
seed sig-enc "$MITRA" "$ANDI" "$tmp/se.p7m"
enc segcm "$tmp/good.sig" -aes-256-gcm -recip "$a" -keyopt rsa_padding_mode:oaep
seed sig-enc-gcm-oaep "$MITRA" "$ANDI" "$tmp/segcm.p7m"
enc set "$tmp/tampered.sig" -aes-256-cbc "$a"
seed sig-enc-tampered "$MITRA" "$ANDI" "$tmp/set.p7m"
enc oe "$tmp/opaque.sig" -aes-256-cbc "$a"
seed opaque-enc "$MITRA" "$ANDI" "$tmp/oe.p7m"

# broken: python3 cuts and patches (deterministic)
/usr/bin/python3 - "$tmp" <<'EOF'
import base64, random, sys
t = sys.argv[1]
def smime(der, extra=b""):
    b = base64.encodebytes(der)
    return (b"MIME-Version: 1.0\nContent-Type: application/pkcs7-mime; "
            b"smime-type=enveloped-data; name=smime.p7m\n"
            b"Content-Transfer-Encoding: base64\n\n" + extra + b)
def put(name, data):
    open("%s/%s.p7m" % (t, name), "wb").write(data)
der = open(t + "/cbc.der", "rb").read()
msg = open(t + "/cbc.p7m", "rb").read()
head, body = msg.split(b"\n\n", 1)
lines = body.split(b"\n")
put("trunc-line", head + b"\n\n" + b"\n".join(lines[: len(lines) // 2]) + b"\n")
half = b"\n".join(lines[: len(lines) // 2])
put("trunc-quad", head + b"\n\n" + half[:-3] + b"\n")
put("bad-char", head + b"\n\n" + b"\n".join(lines[:3] + [b"MIIB!!!*" + lines[3][8:]] + lines[4:]))
random.seed(13)
put("garbage", smime(bytes(random.randrange(256) for _ in range(400))))
put("not-der", smime(b"this is text, not DER\n" * 8))
# absurd lengths: outer SEQUENCE, the RecipientInfos SET, the RSA
# encrypted key, and a length of length 9
assert der[0] == 0x30 and der[1] == 0x82
put("len-outer", smime(b"\x30\x84\x7f\xff\xff\xff" + der[4:]))
i = der.index(b"\x31\x82")
put("len-set", smime(der[:i] + b"\x31\x84\xff\xff\xff\xf0" + der[i + 4:]))
i = der.index(b"\x04\x82\x01\x00")
put("len-key", smime(der[:i] + b"\x04\x84\x7f\xff\xff\xff" + der[i + 4:]))
put("len-of-len", smime(b"\x30\x89" + b"\xff" * 9 + der[4:]))
# deep: indefinite SEQUENCEs inside an EnvelopedData ContentInfo
oid = bytes.fromhex("06092a864886f70d010703")
put("deep-der", smime(b"\x30\x80" + oid + b"\xa0\x80" + b"\x30\x80" * 3000
                      + b"\x00\x00" * 3002))
soid = bytes.fromhex("06092a864886f70d010702")
put("deep-opaque", smime(b"\x30\x80" + soid + b"\xa0\x80" + b"\x30\x80" * 3000
                         + b"\x00\x00" * 3002).replace(b"enveloped-data", b"signed-data"))
put("empty", b"MIME-Version: 1.0\nContent-Type: application/pkcs7-mime; "
    b"smime-type=enveloped-data; name=smime.p7m\n"
    b"Content-Transfer-Encoding: base64\n\n")
# an encrypted part nested in a multipart, and deep multiparts over it
part = msg.split(b"\n", 1)[1]  # without MIME-Version
nested = (b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b0\"\n\n"
          b"--b0\nContent-Type: text/plain\n\nsee the attachment\n--b0\n"
          + part + b"\n--b0--\n")
put("nested", nested)
inner = part
for d in range(60, 0, -1):
    inner = (b"Content-Type: multipart/mixed; boundary=\"d%d\"\n\n--d%d\n" % (d, d)
             + inner + b"\n--d%d--\n" % d)
put("deep-mime", b"MIME-Version: 1.0\n" + inner)
sig = open(t + "/good.sig", "rb").read()
h = sig.split(b"\n\n", 1)[0]
put("signed-empty", h + b"\n\n")
b = sig.split(b"boundary=\"", 1)[1].split(b"\"", 1)[0]
put("signed-no-close", sig.rsplit(b"--" + b + b"--", 1)[0])
EOF
for n in trunc-line trunc-quad bad-char garbage not-der len-outer len-set \
	len-key len-of-len deep-der deep-opaque empty nested deep-mime signed-empty signed-no-close; do
	seed "$n" "$MITRA" "$ANDI" "$tmp/$n.p7m"
done

# forged Authentication-Results of our authserv-id (fuzz_inbound's
# configs say mx.banjarkota.go.id), one foreign, on a plain text message
# and on an encrypted one
{
	printf 'Authentication-Results: mx.banjarkota.go.id; smime=pass\n'
	printf 'Authentication-Results: mx.example.org; dkim=pass\n'
	printf 'Authentication-Results:  (c)\n mx.banjarkota.go.id 1; none\n'
	printf 'Content-Type: text/plain\n\nforged\n'
} >"$tmp/forged.txt"
seed forged-ar "$MITRA" "$ANDI" "$tmp/forged.txt"
{
	printf 'Authentication-Results: mx.banjarkota.go.id; smime=pass\n'
	cat "$tmp/se.p7m"
} >"$tmp/forged-enc.p7m"
seed forged-ar-enc "$MITRA" "$ANDI" "$tmp/forged-enc.p7m"
