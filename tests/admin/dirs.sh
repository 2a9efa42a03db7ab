#!/bin/sh
# Which program needs which directory (issue 15): smimectl runs over a
# temp_dir that does not exist (only the milter spools), the milter refuses
# it with the key's line (or "(default)"), key_dir is made 0700 by import
# when missing and a missing parent is named with what to do, and smimectl
# run as root with no `user` writes as the owner of the database's
# directory.  Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
fx_begin dirs

fx_pki || bail "test PKI"
conf=$work/min.conf
cat >"$conf" <<CONF
socket = "inet:1@127.0.0.1";
database = "$work/smime.db";
domains = [ "banjarkota.go.id" ];
temp_dir = "$work/no-tmp";
key_dir = "$work/keys";
ca_file = "$pki/ca-bundle.pem";
CONF
expect 0 "smimectl init over a temp_dir that does not exist" "$CTL" -c "$conf" init
expect 0 "smimectl list too" "$CTL" -c "$conf" list
expect 78 "smime-milter -n refuses the missing temp_dir" "$MILTER" -c "$conf" -n
has "$conf:4: temp_dir: $work/no-tmp: No such file or directory" \
	"the error names the file, line 4, the key and the path"

# the default temp_dir, when it does not exist on this machine
sed '/^temp_dir/d' "$conf" >"$work/default.conf"
if [ -e /var/lib/smime-milter/tmp ]; then
	ok "# skip /var/lib/smime-milter/tmp exists here"
else
	"$MILTER" -c "$work/default.conf" -n >"$work/out" 2>&1
	has "$work/default.conf: temp_dir (default): /var/lib/smime-milter/tmp: No such file" \
		"a default temp_dir is named as the default"
fi

mkdir "$work/no-tmp"
chmod 0700 "$work/no-tmp"
me_import_cmd andi "$pki" "$CTL" -c "$conf" >"$work/out" 2>&1
tap $? "import creates key_dir"
m=$(stat -c %a "$work/keys" 2>/dev/null)
[ "$m" = 700 ]
tap $? "key_dir made with mode 0700 ($m)"
expect 0 "smime-milter -n passes once temp_dir exists" "$MILTER" -c "$conf" -n

sed "s|^key_dir.*|key_dir = \"$work/gone/keys\";|" "$conf" >"$work/gone.conf"
expect 73 "import with key_dir's parent missing" me_import_cmd sekda "$pki" \
	"$CTL" -c "$work/gone.conf"
has "key_dir $work/gone/keys: its parent $work/gone does not exist" \
	"the error names the missing parent"
[ ! -e "$work/gone" ]
tap $? "and creates nothing"

if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
	chmod 0755 "$work"
	mkdir "$work/state"
	chown nobody "$work/state"
	sed "s|^database.*|database = \"$work/state/smime.db\";|" "$conf" >"$work/own.conf"
	"$CTL" -c "$work/own.conf" init >"$work/out" 2>&1
	o=$(stat -c %U "$work/state/smime.db" 2>/dev/null)
	[ "$o" = nobody ]
	tap $? "root with no user: the database belongs to the directory's owner ($o)"
else
	ok "# skip not root: the owner of the database's directory"
fi
echo "1..$n"
