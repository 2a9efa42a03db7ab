#!/bin/sh
# smimectl notify through the real local Postfix: the alert is handed to
# Postfix's sendmail (sendmail_path), relayed and captured by smtp-sink,
# with the contact and op_admin as recipients; a second run sends nothing.
# Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
fx_begin notify
fx_on_exit() { pf_stop >/dev/null 2>&1; }

fx_pki || bail "test PKI"
# a certificate that expires in 10 days
fx_issue lurah "$pki" 7010 10 "/CN=Kelurahan Hegarsari" lurah@banjarkota.go.id ||
	bail "issue a certificate expiring in 10 days"

set -- $(pf_free_ports 2)
sport=$1 kport=$2
mkdir -p "$work/pf"
chmod 0755 "$work"
pf_start "$work/pf" "$sport" "$kport" "" || bail "private Postfix started"
cat >"$work/sendmail" <<SM
#!/bin/sh
MAIL_CONFIG=$PF_CONF exec /usr/sbin/sendmail -C $PF_CONF "\$@"
SM
chmod 755 "$work/sendmail"

conf=$work/m.conf
me_conf "$conf" "$work" "inet:1@127.0.0.1" 'op_admin = "op@banjarkota.go.id";' \
	"sendmail_path = \"$work/sendmail\";"
"$CTL" -c "$conf" init >/dev/null || bail "init"
"$CTL" -c "$conf" import --mailbox lurah@banjarkota.go.id --kind role \
	--cert "$pki/lurah.crt.pem" --key "$pki/lurah.key.pem" \
	--owner "Lurah Hegarsari" --contact sekretariat.hegarsari@banjarkota.go.id \
	>/dev/null || bail "import"

"$CTL" -c "$conf" notify >"$work/out" 2>&1
tap $? "notify hands the alert to Postfix's sendmail"
pf_wait_delivered 1 60
c=$(pf_sink_files | wc -l)
[ "$c" = 1 ]
tap $? "one alert relayed by Postfix to the sink ($c)"
f=$(pf_sink_files | head -1)
pf_strip_sink "$f" | tr -d '\r' >"$work/alert.eml"
grep -q "^To: sekretariat.hegarsari@banjarkota.go.id" "$work/alert.eml" &&
	grep -q "^Cc: op@banjarkota.go.id" "$work/alert.eml" &&
	grep -q "^Subject: \[Sertifikat Elektronik\] Sertifikat lurah@banjarkota.go.id berakhir dalam [0-9]* hari" "$work/alert.eml"
tap $? "the alert goes to the contact with a copy to op_admin"
rcpts=$(grep -c "X-Rcpt-Args" "$f")
[ "$rcpts" = 2 ]
tap $? "two envelope recipients (contact and op_admin: $rcpts)"
grep -q "Yth. Lurah Hegarsari" "$work/alert.eml" && grep -q "Pasal 14" "$work/alert.eml"
tap $? "the Indonesian text names the owner and Pasal 14"
"$CTL" -c "$conf" notify >"$work/out2" 2>&1
sleep 3
c=$(pf_sink_files | wc -l)
[ "$c" = 1 ] && grep -q "0 alerts sent, 1 already sent before" "$work/out2"
tap $? "a second run sends nothing ($c in the sink)"
echo "1..$n"
