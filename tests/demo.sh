#!/bin/sh
# make demo -- the main job in one minute: a throw-away test PKI, a
# database with one civil servant's certificate, a message signed by
# smime-milter exactly as the milter would (-t), then verified by two
# independent verifiers: OpenSSL and GnuPG's gpgsm.
# SMIME_MILTER and SMIMECTL name other binaries than the tree's (the
# installed package's: tests/e2e/package.sh).
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
export TOP
cd "$TOP"
MILTER=${SMIME_MILTER:-$TOP/milter/smime-milter}
CTL=${SMIMECTL:-$TOP/admin/smimectl}
work=$(mktemp -d /tmp/smime-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
pki=$work/pki

step() { printf '\n==> %s\n' "$*"; }

step "test PKI (root, issuing CA, certificates for @banjarkota.go.id)"
sh tests/lib/pki.sh "$pki" >/dev/null
printf '%s files in %s\n' "$(ls "$pki" | wc -l)" "$pki"

mkdir -p "$work/tmp"
cat >"$work/smime-milter.conf" <<CONF
socket = "inet:8891@127.0.0.1";
database = "$work/smime-milter.db";
key_dir = "$work/keys";
temp_dir = "$work/tmp";
ca_file = "$pki/ca-bundle.pem";
domains = [ "banjarkota.go.id" ];
CONF
ctl() { "$CTL" -c "$work/smime-milter.conf" "$@"; }

step "smimectl init && smimectl import (PKCS#12 of andi@banjarkota.go.id)"
ctl init
ctl import --mailbox andi@banjarkota.go.id --kind individual \
	--p12 "$pki/andi.p12" --passphrase-file "$pki/andi.pass"
ctl list

step "smime-milter -n (configuration, database and keys)"
"$MILTER" -c "$work/smime-milter.conf" -n

cat >"$work/message.eml" <<'MSG'
From: Andi Pratama <andi@banjarkota.go.id>
To: kepala.dinas@jabarprov.go.id
Subject: Laporan bulanan Diskominfo
Date: Tue, 24 Nov 2026 09:00:00 +0700
Message-ID: <demo-1@banjarkota.go.id>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Yth. Bapak Kepala Dinas,

Bersama ini kami sampaikan laporan bulanan — ringkasan terlampir.
Terima kasih atas perhatiannya.

Hormat kami,
Andi
MSG

step "smime-milter -t message.eml (the milter's own code path, offline)"
"$MILTER" -c "$work/smime-milter.conf" -t "$work/message.eml" \
	>"$work/signed.eml" 2>"$work/milter.log"
sed -n '1,/^\r*$/p' "$work/signed.eml" | tr -d '\r'
echo "[... $(wc -c <"$work/signed.eml") bytes in all]"

step "openssl cms -verify (trusting only the root)"
openssl cms -verify -in "$work/signed.eml" -inform SMIME \
	-CAfile "$pki/root.crt.pem" -purpose smimesign -out /dev/null

step "full check: openssl, gpgsm, signer, headers, content"
. tests/lib/verify.sh
if verify_message "$work/signed.eml" "$work/message.eml" \
	andi@banjarkota.go.id "$pki"; then
	echo "structure=$VM_STRUCT openssl=$VM_OPENSSL gpgsm=$VM_GPGSM" \
		"signer=$VM_SIGNER cms=$VM_CMS headers=$VM_HEADERS content=$VM_CONTENT"
	printf '\nDEMO OK: signed by andi@banjarkota.go.id, verified by openssl and gpgsm\n'
else
	echo "DEMO FAILED: $VM_FAILED"
	exit 1
fi
