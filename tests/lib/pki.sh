#!/bin/sh
# tests/lib/pki.sh DIR -- build a throw-away test PKI in DIR with the openssl CLI.
#
# What it makes (all PEM unless said otherwise, keys unencrypted and mode 0600):
#   DIR/root.crt.pem  DIR/root.key.pem     "Test BSrE Root" (self-signed CA)
#   DIR/inter.crt.pem DIR/inter.key.pem    "Test BSrE Issuing CA" (signed by root)
#   DIR/ca-bundle.pem                      root + intermediate (trust bundle)
#   DIR/crl.pem DIR/crl.der                CRL of the intermediate, lists "revoked"
#   for every leaf NAME (signed by the intermediate):
#     DIR/NAME.crt.pem DIR/NAME.key.pem
#     DIR/NAME.p12         PKCS#12 with OpenSSL 3 default algorithms
#                          (key, cert, intermediate, root), passphrase in:
#     DIR/NAME.pass        (mode 0600, one line, no trailing newline)
#     DIR/NAME.legacy.p12  same content, `openssl pkcs12 -export -legacy`
#                          (RC2/3DES, what gpgsm 2.2 imports), same passphrase
#   Leaves (keyUsage critical digitalSignature,keyEncipherment, EKU
#   emailProtection, RSA-2048, SAN rfc822Name, unless said otherwise):
#     andi       andi@banjarkota.go.id      individual
#     sekda      sekda@banjarkota.go.id     role
#     noreply    noreply@banjarkota.go.id   system
#     legacy     legacy@banjarkota.go.id    address only as emailAddress in the
#                                           subject DN, no subjectAltName
#     ec         ec@banjarkota.go.id        EC P-256 key
#     expired    expired@banjarkota.go.id   validity 2020-01-01 .. 2021-01-01
#     future     future@banjarkota.go.id    notBefore one year from now
#     serveronly serveronly@banjarkota.go.id EKU serverAuth only
#     nosign     nosign@banjarkota.go.id    keyUsage keyEncipherment only
#     revoked    revoked@banjarkota.go.id   valid, but listed in DIR/crl.pem
#     other      other@example.org          a domain the milter does not sign for
#   Partner agencies (recipients of encrypted mail, same test CA):
#     mitra      mitra@jabarprov.go.id      RSA-2048
#     auditor    auditor@bpk.go.id          RSA-2048
#     ecmitra    ecmitra@jabarprov.go.id    EC P-256, keyUsage digitalSignature,
#                                           keyAgreement (ECDH recipient)
#     signonly   signonly@jabarprov.go.id   keyUsage digitalSignature only
#                                           (cannot be an encryption recipient)
#     revmitra   revmitra@jabarprov.go.id   valid, but listed in DIR/crl.pem
#     expmitra   expmitra@jabarprov.go.id   validity 2020-01-01 .. 2021-01-01
#   A second certificate of a mailbox (inbound decryption, ECDH):
#     noreplyec  noreply@banjarkota.go.id   EC P-256, keyUsage digitalSignature,
#                                           keyAgreement
#   Internal state of `openssl ca` lives in DIR/ca/ (config, index, serial).
#
# Running it again on the same DIR rebuilds everything from scratch.
# Needs only openssl (3.x); takes a second or two.
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
dir=$1
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
umask 077

LEAVES="andi sekda noreply legacy ec expired future serveronly nosign revoked other
	mitra auditor ecmitra signonly revmitra expmitra noreplyec"

# Start clean: remove whatever an earlier run left.
rm -rf "$dir/ca"
for n in root inter $LEAVES; do
	rm -f "$dir/$n.crt.pem" "$dir/$n.key.pem" "$dir/$n.p12" \
		"$dir/$n.legacy.p12" "$dir/$n.pass" "$dir/$n.csr.pem"
done
rm -f "$dir/ca-bundle.pem" "$dir/crl.pem" "$dir/crl.der"
mkdir -p "$dir/ca/root" "$dir/ca/inter"
for c in root inter; do
	: >"$dir/ca/$c/index.txt"
	echo "unique_subject = no" >"$dir/ca/$c/index.txt.attr"
done
# Distinct serial ranges so no two certificates share a serial.
echo 1000 >"$dir/ca/root/serial"
echo 2000 >"$dir/ca/inter/serial"
echo 01 >"$dir/ca/inter/crlnumber"

cnf=$dir/ca/openssl.cnf
cat >"$cnf" <<EOF
# Minimal config for the test PKI; the leaf address comes from \$ENV::LEAF_EMAIL.
[ req ]
distinguished_name = req_dn
prompt = no
[ req_dn ]
CN = placeholder

[ ca ]
default_ca = inter_ca

EOF
# ca_section NAME DAYS: the section NAME_ca of the CA DIR/NAME.crt.pem, its
# state in DIR/ca/NAME (the intermediate also signs the CRL)
ca_section() {
	printf '[ %s_ca ]\ndir = %s/ca/%s\n' "$1" "$dir" "$1"
	echo 'database = $dir/index.txt'
	echo 'serial = $dir/serial'
	[ "$1" = inter ] && echo 'crlnumber = $dir/crlnumber'
	echo 'new_certs_dir = $dir'
	printf 'certificate = %s/%s.crt.pem\nprivate_key = %s/%s.key.pem\n' "$dir" "$1" "$dir" "$1"
	printf 'default_md = sha256\ndefault_days = %s\n' "$2"
	[ "$1" = inter ] && echo 'default_crl_days = 3650'
	printf 'policy = policy_any\nunique_subject = no\ncopy_extensions = none\nemail_in_dn = yes\n\n'
}
{
	ca_section root 3650
	ca_section inter 730
} >>"$cnf"
cat >>"$cnf" <<EOF
[ policy_any ]
countryName = optional
organizationName = optional
organizationalUnitName = optional
commonName = supplied
emailAddress = optional

[ ext_root ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ ext_inter ]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
# the leaf profiles: leaf_ext SECTION KEY-USAGE EKU [nosan]
leaf_ext() {
	printf '\n[ %s ]\nbasicConstraints = critical, CA:false\nkeyUsage = critical, %s\n' "$1" "$2"
	printf 'extendedKeyUsage = %s\nsubjectKeyIdentifier = hash\n' "$3"
	echo 'authorityKeyIdentifier = keyid:always'
	[ "${4:-}" = nosan ] || echo 'subjectAltName = email:$ENV::LEAF_EMAIL'
}
{
	leaf_ext ext_leaf "digitalSignature, keyEncipherment" emailProtection
	leaf_ext ext_leaf_nosan "digitalSignature, keyEncipherment" emailProtection nosan
	leaf_ext ext_leaf_server "digitalSignature, keyEncipherment" serverAuth
	leaf_ext ext_leaf_ecdh "digitalSignature, keyAgreement" emailProtection
	leaf_ext ext_leaf_signonly digitalSignature emailProtection
	leaf_ext ext_leaf_nosign keyEncipherment emailProtection
} >>"$cnf"
export OPENSSL_CONF="$cnf"
LEAF_EMAIL=nobody@invalid
export LEAF_EMAIL

ossl() {
	# openssl with quiet stdout/stderr unless it fails
	if ! out=$(openssl "$@" 2>&1); then
		echo "pki.sh: openssl $*" >&2
		echo "$out" >&2
		exit 1
	fi
}

# UTC timestamps in the GeneralizedTime form `openssl ca` accepts.
ts() { date -u -d "$1" +%Y%m%d%H%M%SZ; }

# Generate the keys in parallel (the slow part).
genkey() {
	case $1 in
	ec | ecmitra | noreplyec) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$dir/$1.key.pem" 2>/dev/null ;;
	*) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
		-out "$dir/$1.key.pem" 2>/dev/null ;;
	esac
}
pids=
for n in root inter $LEAVES; do
	genkey "$n" &
	pids="$pids $!"
done
for p in $pids; do
	wait "$p" || { echo "pki.sh: key generation failed" >&2; exit 1; }
done

# Root CA, self-signed through `openssl ca -selfsign` so its dates can be set.
ossl req -new -key "$dir/root.key.pem" -out "$dir/ca/root.csr.pem" \
	-subj "/C=ID/O=Test BSrE/CN=Test BSrE Root"
ossl ca -batch -notext -name root_ca -selfsign -keyfile "$dir/root.key.pem" \
	-in "$dir/ca/root.csr.pem" -out "$dir/root.crt.pem" -extensions ext_root \
	-startdate 20190101000000Z -enddate 20491231235959Z

# Intermediate, signed by the root.
ossl req -new -key "$dir/inter.key.pem" -out "$dir/ca/inter.csr.pem" \
	-subj "/C=ID/O=Test BSrE/CN=Test BSrE Issuing CA"
ossl ca -batch -notext -name root_ca -in "$dir/ca/inter.csr.pem" \
	-out "$dir/inter.crt.pem" -extensions ext_inter \
	-startdate 20190601000000Z -enddate 20481231235959Z

cat "$dir/root.crt.pem" "$dir/inter.crt.pem" >"$dir/ca-bundle.pem"

now_start=$(ts '-1 day')
now_end=$(ts '+2 years')

# leaf NAME EMAIL "CN" EXTSECTION [START END] [DN-with-email]
leaf() {
	name=$1 email=$2 cn=$3 ext=$4 start=${5:-$now_start} end=${6:-$now_end}
	case $email in
	*@banjarkota.go.id) subj="/C=ID/O=Pemerintah Kota Banjarkota/CN=$cn" ;;
	*.go.id) subj="/C=ID/O=Partner Agency/CN=$cn" ;;
	*) subj="/C=US/O=Example Org/CN=$cn" ;;
	esac
	if [ "$ext" = ext_leaf_nosan ]; then
		subj="$subj/emailAddress=$email"
	fi
	ossl req -new -key "$dir/$name.key.pem" -out "$dir/ca/$name.csr.pem" \
		-subj "$subj"
	LEAF_EMAIL=$email
	ossl ca -batch -notext -name inter_ca \
		-in "$dir/ca/$name.csr.pem" -out "$dir/$name.crt.pem" \
		-extensions "$ext" -startdate "$start" -enddate "$end"
}

# The leaves, in this order (their serial numbers follow it): name, address,
# CN, extension section, and the validity when not the default.
y1=$(ts '+1 year') y3=$(ts '+3 years')
while IFS='|' read -r l_name l_email l_cn l_ext l_start l_end; do
	leaf "$l_name" "$l_email" "$l_cn" "$l_ext" "${l_start:-$now_start}" \
		"${l_end:-$now_end}"
done <<LEAVES
andi|andi@banjarkota.go.id|Andi Pratama|ext_leaf
sekda|sekda@banjarkota.go.id|Sekretariat Daerah|ext_leaf
noreply|noreply@banjarkota.go.id|Banjarkota No-Reply|ext_leaf
legacy|legacy@banjarkota.go.id|Legacy User|ext_leaf_nosan
ec|ec@banjarkota.go.id|EC User|ext_leaf
expired|expired@banjarkota.go.id|Expired User|ext_leaf|20200101000000Z|20210101000000Z
future|future@banjarkota.go.id|Future User|ext_leaf|$y1|$y3
serveronly|serveronly@banjarkota.go.id|Server Only|ext_leaf_server
nosign|nosign@banjarkota.go.id|No Sign|ext_leaf_nosign
revoked|revoked@banjarkota.go.id|Revoked User|ext_leaf
other|other@example.org|Other Domain|ext_leaf
mitra|mitra@jabarprov.go.id|Mitra Jabar|ext_leaf
auditor|auditor@bpk.go.id|Auditor BPK|ext_leaf
ecmitra|ecmitra@jabarprov.go.id|EC Mitra|ext_leaf_ecdh
signonly|signonly@jabarprov.go.id|Sign Only Mitra|ext_leaf_signonly
revmitra|revmitra@jabarprov.go.id|Revoked Mitra|ext_leaf
expmitra|expmitra@jabarprov.go.id|Expired Mitra|ext_leaf|20200101000000Z|20210101000000Z
noreplyec|noreply@banjarkota.go.id|Banjarkota No-Reply (EC)|ext_leaf_ecdh
LEAVES

# Revoke "revoked" and "revmitra" and publish the CRL (PEM and DER).
ossl ca -name inter_ca -revoke "$dir/revoked.crt.pem" -crl_reason keyCompromise
ossl ca -name inter_ca -revoke "$dir/revmitra.crt.pem" -crl_reason keyCompromise
ossl ca -name inter_ca -gencrl -out "$dir/crl.pem"
ossl crl -in "$dir/crl.pem" -outform DER -out "$dir/crl.der"

# PKCS#12 files, modern and legacy, each with its own random passphrase.
for n in $LEAVES; do
	pass="test-$n-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
	printf '%s' "$pass" >"$dir/$n.pass"
	chmod 0600 "$dir/$n.pass"
	ossl pkcs12 -export -inkey "$dir/$n.key.pem" -in "$dir/$n.crt.pem" \
		-certfile "$dir/ca-bundle.pem" -name "$n" \
		-passout "file:$dir/$n.pass" -out "$dir/$n.p12"
	ossl pkcs12 -export -legacy -inkey "$dir/$n.key.pem" -in "$dir/$n.crt.pem" \
		-certfile "$dir/ca-bundle.pem" -name "$n" \
		-passout "file:$dir/$n.pass" -out "$dir/$n.legacy.p12"
done

chmod 0600 "$dir"/*.key.pem "$dir"/*.p12 "$dir"/*.pass
chmod 0644 "$dir"/*.crt.pem "$dir/ca-bundle.pem" "$dir/crl.pem" "$dir/crl.der"
rm -f "$dir"/ca/*.csr.pem
exit 0
