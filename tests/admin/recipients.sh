#!/bin/sh
# smimectl recipient import|list|remove (issue 5): partner certificates in
# PEM, DER and PKCS#7 bundles, the refusals (usage, EKU, expiry, trust,
# CRL before and after), list and --json, remove by address, id, serial
# and fingerprint, migration of a schema 3 database, and SQL metacharacters
# that stay data.  Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
fx_begin rcpt
serial_of() { openssl x509 -in "$1" -noout -serial | sed 's/.*=//'; }
fpr_of() { openssl x509 -in "$1" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g'; }

fx_pki || bail "test PKI"
conf=$work/m.conf
db=$work/smime.db
me_conf "$conf" "$work" "inet:1@127.0.0.1"

# a partner certificate with two addresses, from the test issuing CA
fx_issue two "$work" 7001 365 "/C=ID/O=Partner Agency/CN=Sekretariat Jabar" \
	Sekretariat@jabarprov.go.id tu@jabarprov.go.id -- basicConstraints=critical,CA:FALSE \
	keyUsage=critical,digitalSignature,keyEncipherment extendedKeyUsage=emailProtection ||
	bail "issue the two-address certificate"
# a self-signed end-entity certificate fit for encryption, not from ca_file
cat >"$work/self.cnf" <<EOF
[ req ]
distinguished_name = dn
x509_extensions = ext
prompt = no
[ dn ]
CN = Self Signed Mitra
[ ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = emailProtection
subjectAltName = email:self@jabarprov.go.id
EOF
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/self.key.pem" \
	-config "$work/self.cnf" -days 365 -out "$work/self.crt.pem" 2>/dev/null ||
	bail "self-signed certificate"
# auditor as DER; ecmitra with the intermediate as a PKCS#7 bundle
openssl x509 -in "$pki/auditor.crt.pem" -outform DER -out "$work/auditor.der" ||
	bail "DER"
openssl crl2pkcs7 -nocrl -certfile "$pki/ecmitra.crt.pem" \
	-certfile "$pki/inter.crt.pem" -outform DER -out "$work/ecmitra.p7b" ||
	bail "PKCS#7 bundle"
c=$(openssl pkcs7 -inform DER -in "$work/ecmitra.p7b" -print_certs | grep -c '^subject=')
[ "$c" = 2 ]
tap $? "the PKCS#7 bundle holds the leaf and the intermediate ($c)"

# ---- schema
expect 0 "init" "$CTL" -c "$conf" init
v=$(me_db_version "$work")
t=$(me_db_tables "$work" | grep -Ex 'recipient_certs|revoked_serials' | paste -sd,)
[ "$v" = 9 ] && [ "$t" = "recipient_certs,revoked_serials" ]
tap $? "schema 9 with recipient_certs and revoked_serials ($v: $t)"

# ---- ca_file is required
grep -v '^ca_file' "$conf" >"$work/noca.conf"
expect 78 "import without ca_file is refused" "$CTL" -c "$work/noca.conf" \
	recipient import "$pki/mitra.crt.pem"
has "set ca_file in $work/noca.conf" "... naming the config key and file"
expect 64 "import without a file is a usage error" "$CTL" -c "$conf" recipient import
expect 64 "an unknown subcommand is a usage error" "$CTL" -c "$conf" recipient frob

# ---- import: PEM
mitra_serial=$(serial_of "$pki/mitra.crt.pem")
expect 0 "import mitra (PEM)" "$CTL" -c "$conf" recipient import "$pki/mitra.crt.pem"
mitra_until=$(date -u -d "$(openssl x509 -in "$pki/mitra.crt.pem" -noout -enddate | sed 's/.*=//')" +%F)
has "imported $mitra_serial for mitra@jabarprov.go.id (valid until $mitra_until)" \
	"... one line with serial, address and expiry day"
has 'run "smimectl reload"' "... and the reload hint"
r=$(q "SELECT address, serial, fingerprint, status, source FROM recipient_certs")
[ "$r" = "mitra@jabarprov.go.id|$mitra_serial|$(fpr_of "$pki/mitra.crt.pem")|active|import" ]
tap $? "the row holds address, serial, SHA-256 fingerprint, status and source ($r)"
q "SELECT cert_pem FROM recipient_certs WHERE address = 'mitra@jabarprov.go.id'" >"$work/stored.pem"
[ "$(fpr_of "$work/stored.pem")" = "$(fpr_of "$pki/mitra.crt.pem")" ]
tap $? "the stored PEM is the certificate"
q_is 1 "history records the import with serial and actor" \
	"SELECT count(*) FROM mailbox_history WHERE event = 'recipient-import' AND address = 'mitra@jabarprov.go.id' AND detail = '$mitra_serial' AND actor IS NOT NULL"

expect 0 "smimectl show of a recipient address" "$CTL" -c "$conf" show mitra@jabarprov.go.id
has "recipient certificates (for encryption):" "... has a recipient certificates section"
has "serial $mitra_serial  until $mitra_until  active  (import)" "... with serial, expiry, state and source"
if grep -q "certificate 0" "$work/out"; then
	nok "... and its history names no certificate 0"
else
	ok "... and its history names no certificate 0"
fi

# ---- idempotent
expect 0 "importing mitra again" "$CTL" -c "$conf" recipient import "$pki/mitra.crt.pem"
has "mitra@jabarprov.go.id: certificate $mitra_serial already known" "... says already known"
r=$(q "SELECT count(*) FROM recipient_certs")
h=$(q "SELECT count(*) FROM mailbox_history WHERE event = 'recipient-import'")
[ "$r" = 1 ] && [ "$h" = 1 ] && ! grep -q "smimectl reload" "$work/out"
tap $? "... and adds no row, no history, no reload hint ($r rows, $h events)"

# ---- intermediates from the files: a trust bundle with the root only
me_conf "$work/root.conf" "$work" "inet:1@127.0.0.1" "ca_file = \"$pki/root.crt.pem\";"
expect 65 "with only the root trusted, a leaf without its intermediate is refused" \
	"$CTL" -c "$work/root.conf" recipient import "$pki/auditor.crt.pem"
has "unable to get local issuer certificate" "... because its issuer is unknown"
expect 0 "import ecmitra from a DER PKCS#7 bundle with the intermediate" \
	"$CTL" -c "$work/root.conf" recipient import "$work/ecmitra.p7b"
has "imported $(serial_of "$pki/ecmitra.crt.pem") for ecmitra@jabarprov.go.id" \
	"... the EC (keyAgreement) leaf, chained through the bundle's intermediate"
q_is 0 "the intermediate itself is not stored as a recipient" \
	"SELECT count(*) FROM recipient_certs WHERE subject LIKE '%Issuing CA%' OR address = ''"
expect 0 "an intermediate given as a separate file serves too" \
	"$CTL" -c "$work/root.conf" recipient import "$pki/inter.crt.pem" "$work/two.crt.pem" \
	--address tu@jabarprov.go.id

# ---- --address: only that address; later without it: the other one too
has "imported 7001 for tu@jabarprov.go.id" "--address stores the certificate under that address"
q_rows_is "tu@jabarprov.go.id" "... and under no other" \
	"SELECT address FROM recipient_certs WHERE serial = '7001' ORDER BY address"
expect 65 "--address the certificate does not carry is refused" \
	"$CTL" -c "$conf" recipient import --address mitra@jabarprov.go.id "$pki/auditor.crt.pem"
has "refused: it does not carry mitra@jabarprov.go.id" "... saying so"
expect 0 "without --address every address is stored (mixed case in the SAN)" \
	"$CTL" -c "$conf" recipient import "$work/two.crt.pem"
has "imported 7001 for sekretariat@jabarprov.go.id" "... the new one, lower-cased"
has "tu@jabarprov.go.id: certificate 7001 already known" "... and the known one"

# ---- one run: a good DER certificate and four refusals
auditor_serial=$(serial_of "$pki/auditor.crt.pem")
expect 65 "a run with refused certificates exits 65" "$CTL" -c "$conf" recipient import \
	"$pki/signonly.crt.pem" "$pki/serveronly.crt.pem" "$work/auditor.der" \
	"$pki/expired.crt.pem" "$work/self.crt.pem"
has "imported $auditor_serial for auditor@bpk.go.id" "... the good one (DER) is stored anyway"
has "$pki/signonly.crt.pem: certificate $(serial_of "$pki/signonly.crt.pem") (CN=Sign Only Mitra,O=Partner Agency,C=ID): refused: keyUsage does not allow encryption: an RSA recipient needs keyEncipherment" \
	"signonly: refused, with file, serial, subject and the key usage rule"
has "$pki/serveronly.crt.pem: certificate $(serial_of "$pki/serveronly.crt.pem") (" \
	"serveronly: refused with file and serial"
has "refused: extendedKeyUsage does not include emailProtection" "... for its EKU"
has "refused: certificate expired on 2021-01-01" "expired: refused for its expiry"
grep -F "$work/self.crt.pem: certificate" "$work/out" | grep -Fq "refused: does not verify against $pki/ca-bundle.pem: self-signed certificate"
tap $? "self-signed: refused, does not chain to ca_file"
q_rows_is "auditor@bpk.go.id,ecmitra@jabarprov.go.id,mitra@jabarprov.go.id,sekretariat@jabarprov.go.id,tu@jabarprov.go.id" "exactly the good certificates are stored" \
	"SELECT address FROM recipient_certs ORDER BY address"

# ---- unreadable and empty files
expect 66 "a missing file: exit 66" "$CTL" -c "$conf" recipient import \
	"$pki/revmitra.crt.pem" "$work/nonexistent.pem"
expect 66 "a directory: exit 66" "$CTL" -c "$conf" recipient import "$work/pki"
q_is 0 "... and nothing from the same run is stored" \
	"SELECT count(*) FROM recipient_certs WHERE address = 'revmitra@jabarprov.go.id'"
echo "not a certificate" >"$work/junk.pem"
expect 65 "a file without certificates is refused" "$CTL" -c "$conf" recipient import "$work/junk.pem"
has "junk.pem: refused: no certificate" "... saying so"

# ---- CRL: a certificate imported before is revoked, one after is refused
revoked_serial=$(serial_of "$pki/revoked.crt.pem")
revmitra_serial=$(serial_of "$pki/revmitra.crt.pem")
expect 0 "import revoked@ before the CRL" "$CTL" -c "$conf" recipient import "$pki/revoked.crt.pem"
expect 0 "crl import" "$CTL" -c "$conf" crl import "$pki/crl.pem"
has "2 serials listed, 1 certificate marked revoked" "... counts the recipient certificate it revoked"
q_is "revoked crl 1" "the recipient certificate imported before the CRL is now revoked" \
	"SELECT status || ' ' || revocation_reason || ' ' || CASE WHEN revoked_at > 0 THEN 1 ELSE 0 END FROM recipient_certs WHERE serial = '$revoked_serial'"
q_rows_is "$revoked_serial:keyCompromise,$revmitra_serial:keyCompromise" "revoked_serials holds every CRL entry with its reason" \
	"SELECT serial || ':' || reason FROM revoked_serials WHERE issuer = 'CN=Test BSrE Issuing CA,O=Test BSrE,C=ID' ORDER BY serial"
q_is 1 "history records the revocation" \
	"SELECT count(*) FROM mailbox_history WHERE event = 'recipient-revoked' AND address = 'revoked@banjarkota.go.id'"
expect 0 "crl import again is idempotent" "$CTL" -c "$conf" crl import "$pki/crl.pem"
has "2 serials listed, 0 certificates marked revoked" "... nothing new revoked"
expect 65 "revmitra, imported after the CRL, is refused" "$CTL" -c "$conf" recipient import "$pki/revmitra.crt.pem"
has "certificate $revmitra_serial (CN=Revoked Mitra,O=Partner Agency,C=ID): refused: it is revoked" \
	"... as revoked"
q_is 0 "... and not stored" \
	"SELECT count(*) FROM recipient_certs WHERE address = 'revmitra@jabarprov.go.id'"

# ---- list
expect 0 "recipient list" "$CTL" -c "$conf" recipient list
l=$(grep -E "^[0-9]+ +mitra@jabarprov.go.id +$mitra_serial +[0-9]{4}-[0-9]{2}-[0-9]{2} +active +import +CN=Mitra Jabar" "$work/out" | wc -l)
[ "$l" = 1 ]
tap $? "a row: id, address, serial, expiry day, state, source, subject ($l)"
grep -Eq "revoked@banjarkota.go.id +$revoked_serial +[0-9-]+ +revoked " "$work/out"
tap $? "the CRL-revoked certificate shows as revoked"
c=$(grep -c "@" "$work/out")
[ "$c" = 6 ]
tap $? "one row per stored certificate and address ($c)"
expect 0 "recipient list --address" "$CTL" -c "$conf" recipient list --address TU@jabarprov.go.id
c=$(grep -c "@" "$work/out")
[ "$c" = 1 ] && grep -q "tu@jabarprov.go.id" "$work/out"
tap $? "... shows that address only, any case ($c)"
expect 0 "list --address with no certificate" "$CTL" -c "$conf" recipient list --address nobody@bpk.go.id
has "no recipient certificates for nobody@bpk.go.id" "... says so"
# expired is computed at list time
q "UPDATE recipient_certs SET not_after = 1000 WHERE address = 'auditor@bpk.go.id'"
"$CTL" -c "$conf" recipient list --json >"$work/list.json" 2>"$work/out"
tap $? "recipient list --json"
$PY - "$work/list.json" "$mitra_serial" "$(fpr_of "$pki/mitra.crt.pem")" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
assert isinstance(rows, list) and len(rows) == 6, rows
by = {r["address"]: r for r in rows}
m = by["mitra@jabarprov.go.id"]
assert m["serial"] == sys.argv[2], m
assert m["fingerprint"] == sys.argv[3], m
assert m["subject"] == "CN=Mitra Jabar,O=Partner Agency,C=ID", m
assert m["issuer"] == "CN=Test BSrE Issuing CA,O=Test BSrE,C=ID", m
assert m["state"] == "active" and m["status"] == "active", m
assert m["source"] == "import" and isinstance(m["id"], int), m
assert m["not_after"].endswith(" UTC") and m["not_before"] < m["not_after"], m
assert by["auditor@bpk.go.id"]["state"] == "expired", by["auditor@bpk.go.id"]
assert by["auditor@bpk.go.id"]["status"] == "active"
assert by["revoked@banjarkota.go.id"]["state"] == "revoked"
assert by["ecmitra@jabarprov.go.id"]["state"] == "active"
assert [r["address"] for r in rows] == sorted(r["address"] for r in rows)
PY
tap $? "--json: every field, states active/expired/revoked, ordered by address"
q "UPDATE recipient_certs SET not_after = 4102444800 WHERE address = 'auditor@bpk.go.id'"

# ---- SQL metacharacters stay data
evil="x'); DROP TABLE recipient_certs; --@jabarprov.go.id"
before=$(q "SELECT count(*) FROM recipient_certs")
expect 0 "list --address with SQL metacharacters" "$CTL" -c "$conf" recipient list --address "$evil"
has "no recipient certificates for" "... matches nothing"
expect 65 "import --address with SQL metacharacters" "$CTL" -c "$conf" recipient import \
	--address "$evil" "$pki/mitra.crt.pem"
expect 1 "remove with SQL metacharacters" "$CTL" -c "$conf" recipient remove "$evil"
expect 1 "remove with an SQL pattern" "$CTL" -c "$conf" recipient remove "%' OR '1'='1"
after=$(q "SELECT count(*) FROM recipient_certs")
[ "$before" = 6 ] && [ "$after" = 6 ]
tap $? "the table and its rows are intact ($before, $after)"

# ---- remove
expect 1 "remove of something unknown exits 1" "$CTL" -c "$conf" recipient remove nobody@bpk.go.id
has "no recipient certificate matches 'nobody@bpk.go.id'" "... with a clear message"
expect 1 "remove of an unknown serial exits 1" "$CTL" -c "$conf" recipient remove DEADBEEF
expect 0 "remove by address" "$CTL" -c "$conf" recipient remove Sekretariat@JABARPROV.go.id
has "removed 1 recipient certificate" "... one removed"
q_rows_is "tu@jabarprov.go.id" "... only that address's row" \
	"SELECT address FROM recipient_certs WHERE serial = '7001' ORDER BY address"
id=$($PY -c 'import json,sys; print([r["id"] for r in json.load(open(sys.argv[1])) if r["address"] == "ecmitra@jabarprov.go.id"][0])' "$work/list.json")
expect 0 "remove by the id shown by list" "$CTL" -c "$conf" recipient remove "$id"
q_is 0 "... ecmitra is gone" \
	"SELECT count(*) FROM recipient_certs WHERE address = 'ecmitra@jabarprov.go.id'"
expect 0 "remove by serial" "$CTL" -c "$conf" recipient remove "$auditor_serial"
q_is 0 "... auditor is gone" \
	"SELECT count(*) FROM recipient_certs WHERE address = 'auditor@bpk.go.id'"
fpr=$(fpr_of "$pki/mitra.crt.pem" | tr 'A-F' 'a-f')
expect 0 "remove by fingerprint (lower-case)" "$CTL" -c "$conf" recipient remove "$fpr"
q_rows_is "revoked@banjarkota.go.id,tu@jabarprov.go.id" "... mitra is gone, the rest stays" \
	"SELECT address FROM recipient_certs ORDER BY address"
q_is 4 "history records every removal" \
	"SELECT count(*) FROM mailbox_history WHERE event = 'recipient-remove' AND actor IS NOT NULL"
expect 64 "remove without a spec is a usage error" "$CTL" -c "$conf" recipient remove

# ---- migration from schema 3 keeps the data
m3=$work/m3
mkdir -p "$m3"
ln -s "$pki" "$m3/pki"
me_conf "$m3/m.conf" "$m3" "inet:1@127.0.0.1"
db=$m3/smime.db
"$CTL" -c "$m3/m.conf" init >/dev/null &&
	"$CTL" -c "$m3/m.conf" import --mailbox andi@banjarkota.go.id --kind individual \
		--cert "$pki/andi.crt.pem" --key "$pki/andi.key.pem" >/dev/null &&
	"$CTL" -c "$m3/m.conf" import --mailbox revoked@banjarkota.go.id --kind individual \
		--cert "$pki/revoked.crt.pem" --key "$pki/revoked.key.pem" >/dev/null ||
	bail "a database to turn into schema 3"
# what schema 3 was: no recipient_certs, no revoked_serials, no audit
# hash chain (schema 5), no inbound audit columns (schema 6); its crl
# import revoked signing certificates only
v3="PRAGMA user_version = 3" # the version: SQLite's pragma, or our table
me_db_pg && v3="UPDATE schema_version SET version = 3"
q "DROP TABLE crl_sources; DROP TABLE ocsp_responses; DROP INDEX audit_node_id; ALTER TABLE audit DROP COLUMN node; ALTER TABLE audit_anchors DROP COLUMN node; DROP TABLE recipient_certs; DROP TABLE revoked_serials;
	ALTER TABLE audit DROP COLUMN cert_issuer; ALTER TABLE audit DROP COLUMN recipients;
	ALTER TABLE audit DROP COLUMN hash; ALTER TABLE audit DROP COLUMN prev_hash;
	UPDATE certificates SET status = 'revoked', revoked_at = 1700000000, revocation_reason = 'crl' WHERE serial = '$revoked_serial';
	$v3;" || bail "schema 3"
expect 66 "a schema 3 database is not used as is" "$CTL" -c "$m3/m.conf" recipient list
has 'run "smimectl init" to migrate' "... the message says to run init"
expect 0 "init migrates it" "$CTL" -c "$m3/m.conf" init
has "schema version 9" "... to version 9"
r=$(q "SELECT mailbox || ':' || status FROM certificates ORDER BY mailbox" | paste -sd,)
m=$(q "SELECT count(*) FROM mailboxes")
[ "$r" = "andi@banjarkota.go.id:active,revoked@banjarkota.go.id:revoked" ] && [ "$m" = 2 ]
tap $? "certificates and mappings are kept ($r; $m mappings)"
q_is "$revoked_serial" "serials a CRL revoked before are carried into revoked_serials" \
	"SELECT serial FROM revoked_serials"
expect 65 "so that certificate is refused as a recipient" \
	"$CTL" -c "$m3/m.conf" recipient import "$pki/revoked.crt.pem"
has "refused: it is revoked" "... as revoked"
expect 0 "the migrated database takes recipient certificates" \
	"$CTL" -c "$m3/m.conf" recipient import "$pki/mitra.crt.pem"
printf 'From: andi@banjarkota.go.id\nSubject: t\n\nhalo\n' >"$work/m.eml"
"$ME_MILTER" -c "$m3/m.conf" -t "$work/m.eml" 2>/dev/null | grep -q "multipart/signed"
tap $? "the milter still signs with the migrated database"

echo "1..$n"
