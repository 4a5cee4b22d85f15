#!/bin/sh
# Installs the Debian packages the tests need, when run as root and when
# they are missing. Run by "make test"; prints what it does.
set -e
[ "$#" -gt 0 ] || exit 0
missing=""
for p in "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -n "$missing" ] || exit 0
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: not root; the tests that need$missing will say so and skip (outside CI)" >&2
	exit 0
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# Never start services: the tests run their own processes on loopback.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d.sidecar
chmod +x /usr/sbin/policy-rc.d.sidecar
if [ ! -e /usr/sbin/policy-rc.d ]; then
	cp /usr/sbin/policy-rc.d.sidecar /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
rm -f /usr/sbin/policy-rc.d.sidecar
apt-get install -y -qq --no-install-recommends $missing >/dev/null
