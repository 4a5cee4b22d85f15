#!/bin/sh
# Unpacks Debian's exim4-daemon-heavy (and the libraries it needs that a
# Postfix machine lacks) privately into $1, without installing it: Exim and
# Postfix conflict as Debian packages. Needs apt-get (run as root).
set -e
dest=${1:?usage: unpack.sh DIR}
mkdir -p "$dest/debs"
cd "$dest/debs"
apt-get download exim4-daemon-heavy exim4-base libmariadb3 libidn12 libspf2-2 >/dev/null 2>&1 || {
	apt-get update -qq >/dev/null 2>&1
	apt-get download exim4-daemon-heavy exim4-base libmariadb3 libidn12 libspf2-2 >/dev/null
}
for f in *.deb; do dpkg -x "$f" "$dest/root"; done
test -x "$dest/root/usr/sbin/exim4"
echo "$dest/root/usr/sbin/exim4"
