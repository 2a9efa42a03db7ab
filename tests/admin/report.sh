#!/bin/sh
# smimectl report (Pasal 24): CSV, JSON and HTML over a database with
# known certificates and audit rows; the HTML is rendered in headless
# Chromium.  Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
fx_begin report

fx_pki || bail "test PKI"
conf=$work/m.conf
me_conf "$conf" "$work" "inet:1@127.0.0.1"
"$CTL" -c "$conf" init >/dev/null || bail "init"
"$CTL" -c "$conf" import --mailbox andi@banjarkota.go.id --kind individual \
	--p12 "$pki/andi.p12" --passphrase-file "$pki/andi.pass" \
	--unit "Dinas Komunikasi dan Informatika" >/dev/null || bail "import andi"
"$CTL" -c "$conf" import --mailbox sekda@banjarkota.go.id --kind role \
	--cert "$pki/sekda.crt.pem" --key "$pki/sekda.key.pem" \
	--unit "Sekretariat Daerah" >/dev/null || bail "import sekda"
"$CTL" -c "$conf" revoke sekda@banjarkota.go.id --reason superseded >/dev/null 2>&1
sekda=$("$CTL" -c "$conf" list --json | /usr/bin/python3 -c \
	'import json,sys; print([r["id"] for r in json.load(sys.stdin) if r["mailbox"].startswith("sekda")][0])')
"$CTL" -c "$conf" revoke "$sekda" --reason cessationOfOperation >/dev/null ||
	bail "revoke sekda"
year=$(date -u +%Y)
ep() { date -u -d "$1" +%s; } # seconds since the epoch of a UTC time
# audit rows as the milter writes them: 5 signed in March, 2 unsigned in
# April (budi@ has no certificate), 1 tempfailed in May, 1 from last year
me_sql "$work" - <<SQL || bail "audit rows"
INSERT INTO audit (at, queue_id, from_addr, action, result)
  SELECT $(ep "$year-03-10 08:00:00") + value, 'Q', 'andi@banjarkota.go.id', 'signed', 'ok'
  FROM (SELECT 1 AS value UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5) AS v;
INSERT INTO audit (at, queue_id, from_addr, action, result) VALUES
  ($(ep "$year-04-02 09:00:00"), 'Q', 'budi@banjarkota.go.id', 'unsigned', 'no usable certificate: no certificate mapped to budi@banjarkota.go.id'),
  ($(ep "$year-04-03 09:00:00"), 'Q', 'budi@banjarkota.go.id', 'unsigned', 'no usable certificate: no certificate mapped to budi@banjarkota.go.id'),
  ($(ep "$year-05-01 10:00:00"), 'Q', 'andi@banjarkota.go.id', 'tempfailed', 'cannot sign: key unreadable'),
  ($(ep "$((year - 1))-12-31 10:00:00"), 'Q', 'andi@banjarkota.go.id', 'signed', 'ok');
SQL
# inbound rows (issue 13), as wave 2 writes them: in June 2 decrypted and
# 1 verified to andi@, 1 not decrypted to andi@ and budi@; in July 1
# verify-failed to sekda@ and andi@ (counted once in each unit); 1 from
# last year
me_sql "$work" - <<SQL || bail "inbound audit rows"
INSERT INTO audit (at, queue_id, from_addr, action, result, recipients, cert_serial, cert_issuer) VALUES
  ($(ep "$year-06-01 08:00:00"), 'I1', 'mitra@jabarprov.go.id', 'decrypted', 'ok', 'andi@banjarkota.go.id', NULL, NULL),
  ($(ep "$year-06-02 08:00:00"), 'I2', 'mitra@jabarprov.go.id', 'decrypted', 'ok', 'andi@banjarkota.go.id', NULL, NULL),
  ($(ep "$year-06-02 08:00:00"), 'I2', 'mitra@jabarprov.go.id', 'verified', 'pass', 'andi@banjarkota.go.id', '1A', 'CN=Mitra CA'),
  ($(ep "$year-06-03 08:00:00"), 'I3', 'mitra@jabarprov.go.id', 'not-decrypted', 'budi@banjarkota.go.id is not a recipient of the encrypted message', 'andi@banjarkota.go.id, budi@banjarkota.go.id', NULL, NULL),
  ($(ep "$year-07-01 08:00:00"), 'I4', 'palsu@example.org', 'verify-failed', 'fail', 'sekda@banjarkota.go.id, andi@banjarkota.go.id', '2B', 'CN=Unknown'),
  ($(ep "$((year - 1))-06-01 08:00:00"), 'I0', 'mitra@jabarprov.go.id', 'decrypted', 'ok', 'andi@banjarkota.go.id', NULL, NULL);
SQL

"$CTL" -c "$conf" report --year "$year" --format json >"$work/r.json"
tap $? "report --format json"
/usr/bin/python3 - "$work/r.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
kind = {k["kind"]: k for k in r["certificates_by_kind"]}
assert kind["individual"]["active"] == 1, kind
assert kind["role"]["active"] == 0 and kind["role"]["revoked"] == 1, kind
month = {m["month"]: m for m in r["messages_by_month"]}
assert len(month) == 12
assert month["03"]["signed"] == 5, month["03"]
assert month["04"]["unsigned"] == 2 and month["05"]["failed"] == 1
assert sum(m["signed"] for m in month.values()) == 5, "last year's row counted"
unit = {u["unit"]: u for u in r["messages_by_unit"]}
assert unit["Dinas Komunikasi dan Informatika"]["signed"] == 5, unit
assert r["unsigned_mailboxes"] == [{"mailbox": "budi@banjarkota.go.id", "messages": 2}], r["unsigned_mailboxes"]
assert r["unsigned_reasons"][0]["messages"] == 2
units = {u["unit"] for u in r["certificates_by_unit"]}
assert units == {"Dinas Komunikasi dan Informatika", "Sekretariat Daerah"}, units
PY
tap $? "JSON counts: certificates by kind and unit, messages by month and unit, unsigned mailboxes"
/usr/bin/python3 - "$work/r.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
month = {m["month"]: m for m in r["inbound_by_month"]}
assert len(month) == 12, month
assert month["06"] == {"month": "06", "decrypted": 2, "not_decrypted": 1, "verified": 1, "verify_failed": 0}, month["06"]
assert month["07"]["verify_failed"] == 1 and month["07"]["decrypted"] == 0, month["07"]
assert sum(m["decrypted"] for m in month.values()) == 2, "last year's row counted"
unit = {u["unit"]: u for u in r["inbound_by_unit"]}
assert set(unit) == {"Dinas Komunikasi dan Informatika", "Sekretariat Daerah"}, unit
d = unit["Dinas Komunikasi dan Informatika"]
assert (d["decrypted"], d["not_decrypted"], d["verified"], d["verify_failed"]) == (2, 1, 1, 1), d
s = unit["Sekretariat Daerah"]
assert (s["decrypted"], s["not_decrypted"], s["verified"], s["verify_failed"]) == (0, 0, 0, 1), s
# the outbound tables do not count inbound rows
assert sum(m["signed"] + m["unsigned"] + m["failed"] for m in r["messages_by_month"]) == 8
PY
tap $? "JSON inbound figures (Pasal 24): per month, per unit of the recipients, outbound tables unchanged"

"$CTL" -c "$conf" report --year "$year" --format csv >"$work/r.csv"
tap $? "report --format csv"
grep -q '^# messages_by_month$' "$work/r.csv" &&
	grep -q '^03,5,0,0,0$' "$work/r.csv" &&
	grep -q '^budi@banjarkota.go.id,2$' "$work/r.csv"
tap $? "CSV sections and rows"
grep -q '^# inbound_by_month$' "$work/r.csv" &&
	grep -q '^month,decrypted,not_decrypted,verified,verify_failed$' "$work/r.csv" &&
	grep -q '^06,2,1,1,0$' "$work/r.csv" &&
	grep -q '^# inbound_by_unit$' "$work/r.csv" &&
	grep -q '^Sekretariat Daerah,0,0,0,1$' "$work/r.csv"
tap $? "CSV inbound sections and rows"

"$CTL" -c "$conf" report --year "$year" --format html >"$work/r.html"
tap $? "report --format html"
! grep -qE '(src|href)="(https?:)?//' "$work/r.html" && grep -q '<svg' "$work/r.html"
tap $? "HTML is self-contained with an inline SVG chart"
if [ -x /usr/bin/chromium ]; then
	prof=$work/chromium-profile
	timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic \
		--no-first-run --disable-background-networking \
		--disable-component-update --disable-sync --user-data-dir="$prof" \
		--dump-dom "file://$work/r.html" >"$work/dom.html" 2>"$work/chromium.log"
	grep -q "Laporan Pemantauan dan Evaluasi Sertifikat Elektronik Tahun $year" "$work/dom.html" &&
		grep -q "budi@banjarkota.go.id" "$work/dom.html" &&
		grep -q "<rect" "$work/dom.html"
	tap $? "Chromium renders the HTML report (title, tables, chart)"
	grep -q "Surat masuk per bulan" "$work/dom.html" &&
		grep -q "Tanda tangan tidak sah" "$work/dom.html"
	tap $? "the HTML report has the inbound tables, in Indonesian"
	timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic \
		--no-first-run --disable-background-networking \
		--disable-component-update --disable-sync --user-data-dir="$prof" \
		--window-size=900,1400 --screenshot="$work/r.png" \
		"file://$work/r.html" >/dev/null 2>&1
	[ -s "$work/r.png" ] && [ "$(stat -c %s "$work/r.png")" -gt 20000 ]
	tap $? "Chromium screenshot of the report ($(stat -c %s "$work/r.png" 2>/dev/null) bytes)"
	[ -n "${REPORT_PNG:-}" ] && cp "$work/r.png" "$REPORT_PNG"
else
	nok "chromium is installed (make deps)"
fi
expect_usage=$("$CTL" -c "$conf" report --year 19 --format html 2>&1 >/dev/null; echo "rc=$?")
case $expect_usage in *rc=64) ok "a bad year is a usage error" ;; *) nok "a bad year is a usage error ($expect_usage)" ;; esac
echo "1..$n"
