#!/bin/sh
# The Debian package (issue 15): "make deb" builds it from a copy of the
# tree (the tree stays as it was), lintian finds no error and every warning
# is explained in debian/README.source, the .deb holds what it should (the
# unit with its hardening, every contrib/smimectl-* unit, the man pages, the
# conffile); "make install DESTDIR=" stages the same directories.  As root
# it is then installed on this machine with apt-get: the user, directories
# and modes; the shipped configuration as it stands, then the minimal one
# (socket, database, domains), each with smimectl init, import, -n, a
# signed message and the daemon run as the unit runs it (as smime-milter);
# the demo against /usr/sbin; and apt-get purge leaves no file and no user.
# The machine is left as it was, also on failure (the exit trap purges).
# Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
fx_begin package nobin
# The package is built and installed plain, whatever the tree's build: the
# sanitizer pass (make check SANITIZE=1) would only repeat the plain run.
if ldd "$TOP/milter/smime-milter" 2>/dev/null | grep -q libasan; then
	ok "package build and install # SKIP the tree is a sanitizer build; the plain pass of make check covers the package"
	echo "1..$n"
	exit 0
fi

installed=0 made_state=0 mpid=
fx_on_exit() {
	me_stop "$mpid"
	[ "$made_state" = 0 ] || rm -rf /var/lib/smime-milter
	[ "$installed" = 1 ] || return 0
	DEBIAN_FRONTEND=noninteractive apt-get purge -y -q \
		-o DPkg::Lock::Timeout=120 smime-milter >"$work/purge-trap.log" 2>&1
	rm -rf /run/smime-milter
}

# mode_is PATH MODE [OWNER]: stat says so, else a "# " line and 1
mode_is() {
	_mg=$(stat -c '%a %U' "$1" 2>/dev/null)
	[ "$_mg" = "$2 ${3:-${_mg#* }}" ] && return 0
	echo "# $1: '$_mg', expected mode $2${3:+ owner $3}"
	return 1
}

v=$(sed -n 's/^#define SMIME_VERSION "\(.*\)"/\1/p' "$TOP/lib/util.h")
dv=$(cd "$TOP" && dpkg-parsechangelog -S Version)
[ -n "$v" ] && [ "$v" = "$dv" ]
tap $? "debian/changelog is at SMIME_VERSION ($dv, $v)"

# every pkg-config module of the Makefile comes from a Build-Depends package
pkgs=$(sed -n 's/^PKGS *:= *//p' "$TOP/Makefile")
bd=$(sed -n '/^Build-Depends:/,/^[A-Z]/p' "$TOP/debian/control" | tr ',' '\n' |
	sed 's/^[A-Za-z-]*: *//; s/^[[:space:]]*//; s/[[:space:](].*//' | grep .)
miss=
for m in $pkgs p11-kit-1 libcurl; do
	pc=$(pkg-config --variable=pcfiledir "$m" 2>/dev/null)/$m.pc
	p=$(dpkg -S "$pc" 2>/dev/null | sed 's/:.*//')
	echo "$bd" | grep -qx "$p" || miss="$miss $m(${p:-?})"
done
[ -z "$miss" ]
tap $? "Build-Depends names the package of every pkg-config module (missing:${miss:- none})"

before=$(git -C "$TOP" status --porcelain 2>/dev/null)
t0=$(date +%s)
nice make -s -C "$TOP" deb DEB_DIR="$work/debs" DEB_BUILD_OPTIONS=nocheck >"$work/deb.log" 2>&1 ||
	{ tail -30 "$work/deb.log" | sed 's/^/# /'; bail "make deb"; }
arch=$(dpkg --print-architecture)
deb=$work/debs/smime-milter_${v}_$arch.deb
[ -f "$deb" ] && [ -f "$work/debs/smime-milter_${v}_$arch.changes" ]
tap $? "make deb built smime-milter_${v}_$arch.deb and its .changes ($(($(date +%s) - t0)) s)"
after=$(git -C "$TOP" status --porcelain 2>/dev/null)
[ "$before" = "$after" ]
tap $? "the work tree is as it was (git status)" || echo "$after" | sed 's/^/# now: /'

lintian -I --pedantic "$work/debs/smime-milter_${v}_$arch.changes" >"$work/lintian" 2>&1
grep '^E:' "$work/lintian" | sed 's/^/# /'
! grep -q '^E:' "$work/lintian"
tap $? "lintian reports no error ($(grep -c '^W:' "$work/lintian") warnings)"
unexplained=
for tag in $(sed -n 's/^[WI]: [^:]*: \([a-z0-9.-]*\).*/\1/p' "$work/lintian" | sort -u); do
	grep -q -- "$tag" "$TOP/debian/README.source" || unexplained="$unexplained $tag"
done
[ -z "$unexplained" ]
tap $? "each lintian warning and note is explained in debian/README.source (not:${unexplained:- none})"

# what the .deb holds
dpkg-deb -c "$deb" | awk '{ print $NF }' | sed 's|^\./|/|' >"$work/files"
dpkg-deb -x "$deb" "$work/x"
want="/usr/sbin/smime-milter /usr/sbin/smimectl /usr/share/man/man8/smime-milter.8.gz
/usr/share/man/man8/smimectl.8.gz /usr/share/man/man5/smime-milter.conf.5.gz
/etc/smime-milter/smime-milter.conf /lib/systemd/system/smime-milter.service"
units=
for u in "$TOP"/contrib/smimectl-*.service "$TOP"/contrib/smimectl-*.timer; do
	units="$units ${u##*/}"
	want="$want /lib/systemd/system/${u##*/}"
done
miss=
for f in $want; do grep -qx "$f" "$work/files" || miss="$miss $f"; done
[ -z "$miss" ]
tap $? "the .deb holds the binaries, the man pages, the conffile, the unit and$units (missing:${miss:- none})"
dpkg-deb -I "$deb" conffiles | grep -qx /etc/smime-milter/smime-milter.conf
tap $? "/etc/smime-milter/smime-milter.conf is a conffile"
! grep -q '^/var/' "$work/files"
tap $? "the state directories are the postinst's, not shipped"
unit=$work/x/lib/systemd/system/smime-milter.service
miss=
for l in ExecStart=/usr/sbin/smime-milter ProtectSystem=strict \
	'ReadWritePaths=/var/lib/smime-milter /run/smime-milter' PrivateTmp=yes \
	NoNewPrivileges=yes CapabilityBoundingSet= ProtectHome=yes PrivateDevices=yes \
	User=smime-milter RuntimeDirectory=smime-milter; do
	grep -q "^$l\( \|\$\)" "$unit" || miss="$miss '$l'"
done
[ -z "$miss" ]
tap $? "the unit runs /usr/sbin/smime-milter as smime-milter, hardened (missing:${miss:- none})"
! grep -h '^Exec' "$work"/x/lib/systemd/system/* | grep -q /usr/local
tap $? "no unit runs a program from /usr/local"
# make install DESTDIR= in a copy of the tree: the same directories
mkdir "$work/src"
(cd "$TOP" && git ls-files -z -co --exclude-standard | xargs -0 tar -cf -) |
	tar -xf - -C "$work/src"
nice make -s -C "$work/src" install DESTDIR="$work/stage" PREFIX=/usr \
	UNITDIR=/lib/systemd/system >"$work/install.log" 2>&1
tap $? "make install DESTDIR=... PREFIX=/usr" || tail -20 "$work/install.log" | sed 's/^/# /'
st=$work/stage
mode_is "$st/var/lib/smime-milter" 750 && mode_is "$st/var/lib/smime-milter/keys" 700 &&
	mode_is "$st/var/lib/smime-milter/tmp" 700
tap $? "it stages /var/lib/smime-milter (0750) with keys/ and tmp/ (0700)"
miss=
for f in $want; do
	case $f in /usr/share/man/*) f=${f%.gz} ;; esac
	[ -e "$st$f" ] || miss="$miss $f"
done
[ -z "$miss" ] && ! grep -h '^Exec' "$st"/lib/systemd/system/* | grep -q /usr/local
tap $? "it stages what the .deb holds, units with /usr/sbin (missing:${miss:- none})"

if [ "$(id -u)" != 0 ]; then
	ok "# skip not root: apt-get install, the installed package and apt-get purge"
	echo "1..$n"
	exit 0
fi
if dpkg -s smime-milter >/dev/null 2>&1 || getent passwd smime-milter >/dev/null ||
	[ -e /var/lib/smime-milter ] || [ -e /etc/smime-milter ]; then
	ok "# skip smime-milter is already on this machine (package, user or directories): not touched"
	echo "1..$n"
	exit 0
fi

# make install for real (as root, no DESTDIR), programs under $work/pfx:
# without the user, the state directories stay root's and it says so
rootinst() {
	make -s -C "$work/src" install PREFIX="$work/pfx$1" SYSCONFDIR="$work/pfx$1/etc" \
		>"$work/rootinst$1.log" 2>&1
}
made_state=1
rootinst 1 && grep -q 'no user smime-milter' "$work/rootinst1.log" &&
	mode_is /var/lib/smime-milter 750 root && mode_is /var/lib/smime-milter/keys 700 root
tap $? "make install as root without the user: /var/lib/smime-milter made, root's, and it says so" ||
	sed 's/^/# /' "$work/rootinst1.log"
rm -rf /var/lib/smime-milter
made_state=0

installed=1
DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=120 \
	"$deb" >"$work/apt.log" 2>&1
tap $? "apt-get install ./smime-milter_${v}_$arch.deb" || tail -20 "$work/apt.log" | sed 's/^/# /'
pw=$(getent passwd smime-milter)
uid=$(id -u smime-milter 2>/dev/null)
gr=$(id -gn smime-milter 2>/dev/null)
[ -n "$uid" ] && [ "$uid" -lt 1000 ] && [ "$gr" = smime-milter ] &&
	[ "$(echo "$pw" | cut -d: -f6,7)" = /var/lib/smime-milter:/usr/sbin/nologin ]
tap $? "system user smime-milter, its own group, no login ($pw)"
mode_is /var/lib/smime-milter 750 smime-milter && mode_is /var/lib/smime-milter/keys 700 smime-milter &&
	mode_is /var/lib/smime-milter/tmp 700 smime-milter
tap $? "/var/lib/smime-milter (0750), keys/ and tmp/ (0700), owned by smime-milter"
mode_is /etc/smime-milter/smime-milter.conf 644 root &&
	dpkg-query -W -f='${Conffiles}' smime-milter | grep -q '/etc/smime-milter/smime-milter.conf '
tap $? "the configuration is a registered conffile, 0644 root"
man -w smime-milter.conf >/dev/null 2>&1 && man -w smimectl >/dev/null 2>&1 &&
	man -w 8 smime-milter >/dev/null 2>&1
tap $? "man finds smime-milter(8), smimectl(8), smime-milter.conf(5)"
miss=
for u in smime-milter.service $units; do [ -f "/lib/systemd/system/$u" ] || miss="$miss $u"; done
[ -z "$miss" ] && ! ls /etc/systemd/system/*.wants/smime* >/dev/null 2>&1
tap $? "unit and timers installed, none enabled (missing:${miss:- none})"
rootinst 2 && ! grep -q 'no user' "$work/rootinst2.log" &&
	mode_is /var/lib/smime-milter 750 smime-milter && mode_is /var/lib/smime-milter/tmp 700 smime-milter &&
	[ "$(stat -c %G "$work/pfx2/etc/smime-milter/smime-milter.conf")" = smime-milter ]
tap $? "make install as root with the user: the directories stay smime-milter's, a new configuration gets its group" ||
	sed 's/^/# /' "$work/rootinst2.log"
if command -v systemd-analyze >/dev/null; then
	systemd-analyze verify /lib/systemd/system/smime-milter.service \
		/lib/systemd/system/smimectl-*.timer >"$work/verify" 2>&1 && [ ! -s "$work/verify" ]
	tap $? "systemd-analyze verify: the unit and the timers, silent" || sed 's/^/# /' "$work/verify"
else
	ok "# skip systemd-analyze is not installed"
fi

# the daemon as the unit runs it: as smime-milter, /run/smime-milter made
# for it; $1 config, $2 port, $3 log; sets mpid
unit_start() {
	install -d -o smime-milter -g smime-milter -m 0750 /run/smime-milter
	setpriv --reuid=smime-milter --regid=smime-milter --init-groups \
		/usr/sbin/smime-milter -f -c "$1" >"$3" 2>&1 &
	mpid=$!
	me_wait_port "$2" 15 && kill -0 "$mpid" 2>/dev/null
}
# sign_through PORT NAME MAILBOX: a message from MAILBOX through the
# daemon, checked with openssl and gpgsm
sign_through() {
	printf 'From: <%s>\nTo: x@example.org\nSubject: %s\nMessage-ID: <%s@banjarkota.go.id>\n\nHalo.\n' \
		"$3" "$2" "$2" >"$work/$2.eml"
	"$PY" "$CLI" --socket "inet:$1@127.0.0.1" --client-ip 127.0.0.1 \
		"$work/$2.eml=$work/$2.out" >"$work/$2.res" 2>&1 &&
		verify_message "$work/$2.out" "$work/$2.eml" "$3" "$pki" >"$work/$2.vm" 2>&1 ||
		{ sed 's/^/# /' "$work/$2.res" "$work/$2.vm"; echo "# ${VM_FAILED:-}"; return 1; }
}

chmod 0755 "$work"
fx_pki || bail "test PKI"
conf=/etc/smime-milter/smime-milter.conf
# the shipped configuration, as it stands (its domain is banjarkota.go.id)
/usr/sbin/smimectl init >"$work/out" 2>&1 && mode_is /var/lib/smime-milter/smime-milter.db 600 smime-milter
tap $? "shipped configuration: smimectl init makes the database, smime-milter's"
me_import_cmd andi "$pki" /usr/sbin/smimectl >"$work/out" 2>&1
tap $? "smimectl import andi (PKCS#12)" || sed 's/^/# /' "$work/out"
setpriv --reuid=smime-milter --regid=smime-milter --init-groups /usr/sbin/smime-milter -n >"$work/out" 2>&1 &&
	grep -q "$conf: OK: 1 mailbox" "$work/out"
tap $? "smime-milter -n, as smime-milter: $(cat "$work/out")"
if ss -ltn 'sport = :8891' | grep -q LISTEN; then
	ok "# skip port 8891 of the shipped configuration is taken here"
else
	unit_start "$conf" 8891 "$work/shipped.log" && sign_through 8891 shipped andi@banjarkota.go.id
	tap $? "the daemon (shipped configuration, as smime-milter) signs a message" ||
		tail -5 "$work/shipped.log" | sed 's/^/# /'
	/usr/sbin/smimectl reload >/dev/null 2>&1 && me_wait_log "$work/shipped.log" 'reloaded: generation 2'
	tap $? "smimectl reload reaches it through the pid file"
	me_stop "$mpid"
	mpid=
fi

# the minimal configuration: socket, database, domains; all else default
set -- $(me_free_ports 1)
mport=$1
mkdir "$work/etc"
printf 'socket = "inet:%s@127.0.0.1";\ndatabase = "/var/lib/smime-milter/minimal.db";\ndomains = [ "banjarkota.go.id" ];\n' \
	"$mport" >"$work/etc/min.conf"
chmod 0755 "$work/etc"
chmod 0644 "$work/etc/min.conf"
mctl() { /usr/sbin/smimectl -c "$work/etc/min.conf" "$@"; }
mctl init >"$work/out" 2>&1 && mode_is /var/lib/smime-milter/minimal.db 600 smime-milter
tap $? "minimal configuration: smimectl init as root, the database is smime-milter's" ||
	sed 's/^/# /' "$work/out"
me_import_cmd sekda "$pki" mctl >"$work/out" 2>&1 &&
	me_import_cmd noreply "$pki" mctl >>"$work/out" 2>&1
tap $? "import (PEM, PKCS#12) into the default key_dir" || sed 's/^/# /' "$work/out"
k=$(find /var/lib/smime-milter/keys -type f ! -user smime-milter -o -type f -perm /077 | head -3)
[ -z "$k" ] && [ "$(find /var/lib/smime-milter/keys -type f | wc -l)" -ge 3 ]
tap $? "the key files are smime-milter's, mode 0600 (${k:-all})"
setpriv --reuid=smime-milter --regid=smime-milter --init-groups /usr/sbin/smime-milter \
	-c "$work/etc/min.conf" -n >"$work/out" 2>&1
tap $? "smime-milter -n with the minimal configuration: $(cat "$work/out")"
unit_start "$work/etc/min.conf" "$mport" "$work/minimal.log" && sign_through "$mport" minimal noreply@banjarkota.go.id
tap $? "the daemon (minimal configuration, as smime-milter) signs a message" ||
	tail -5 "$work/minimal.log" | sed 's/^/# /'
me_stop "$mpid"
mpid=

SMIME_MILTER=/usr/sbin/smime-milter SMIMECTL=/usr/sbin/smimectl sh "$TOP/tests/demo.sh" \
	>"$work/demo.log" 2>&1 && grep -q '^DEMO OK' "$work/demo.log"
tap $? "the demo against /usr/sbin/smime-milter and /usr/sbin/smimectl" ||
	tail -10 "$work/demo.log" | sed 's/^/# /'

rm -rf /run/smime-milter
DEBIAN_FRONTEND=noninteractive apt-get purge -y -q -o DPkg::Lock::Timeout=120 \
	smime-milter >"$work/purge.log" 2>&1
tap $? "apt-get purge -y smime-milter" || tail -10 "$work/purge.log" | sed 's/^/# /'
installed=0
left=$(ls -d /usr/sbin/smime-milter /usr/sbin/smimectl /etc/smime-milter /var/lib/smime-milter \
	/lib/systemd/system/smime-milter.service /lib/systemd/system/smimectl-* \
	/usr/share/man/man8/smimectl.8.gz /usr/share/doc/smime-milter 2>/dev/null)
[ -z "$left" ] && ! dpkg -s smime-milter >/dev/null 2>&1
tap $? "purge leaves no file (left: ${left:-none}) and no dpkg record"
! getent passwd smime-milter >/dev/null && ! getent group smime-milter >/dev/null
tap $? "purge removes the user and the group smime-milter (the postinst made them)"
! grep -qi 'warning\|error' "$work/purge.log"
tap $? "purge says no warning" || grep -i 'warning\|error' "$work/purge.log" | sed 's/^/# /'
echo "1..$n"
