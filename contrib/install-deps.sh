#!/bin/sh
# Installs, on Debian 12 as root, what smime-milter needs to build, to run
# its demo and to run its whole test suite.  Safe to run again: it only
# calls apt-get when something is missing.  Needs no standard input.
set -eu
PKGS="build-essential pkg-config libmilter-dev libssl-dev libconfig-dev
libsqlite3-dev libp11-kit-dev libcurl4-openssl-dev softhsm2 opensc sqlite3 openssl
postfix gpgsm gpg-agent libnss3-tools miltertest python3 procps psmisc iproute2 valgrind
chromium debhelper lintian fakeroot prometheus postgresql libpq-dev"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: missing packages:$missing (run as root)" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	# Postfix must not configure or start a system instance: the tests run
	# private instances on loopback.
	echo "postfix postfix/main_mailer_type select No configuration" |
		debconf-set-selections
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends $missing </dev/null
fi
echo "install-deps: all build and test dependencies are installed"
