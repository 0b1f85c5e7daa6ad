#!/usr/bin/env bash
# Builds the relay's Debian package with dpkg-deb: nothing is downloaded
# beyond the Go modules `go build` needs. Usage:
#   packaging/build-deb.sh [OUTDIR]      (make deb: OUTDIR=dist)
# Environment: GO (go), DEB_VERSION (default: from git), DEB_ARCH (from go env).
# Prints the .deb's path on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
OUT=${1:-dist}
command -v dpkg-deb >/dev/null || { echo "build-deb: dpkg-deb is missing: install the Debian package dpkg" >&2; exit 1; }

commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH=$epoch
if [ -z "${DEB_VERSION:-}" ]; then
	if tag=$(git describe --tags --exact-match 2>/dev/null) && [[ $tag =~ ^v?[0-9] ]]; then
		DEB_VERSION=${tag#v}
	else
		# Before the first release tag: sorts below 0.1 and by commit time.
		DEB_VERSION=0.0~git$(date -u -d "@$epoch" +%Y%m%d%H%M%S).$commit
	fi
fi
ARCH=${DEB_ARCH:-$($GO env GOARCH)}
case $ARCH in 386) ARCH=i386 ;; arm) ARCH=armhf ;; esac

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
install -d "$root/DEBIAN" "$root/usr/bin" "$root/etc/relay" "$root/etc/default" \
	"$root/lib/systemd/system" "$root/usr/share/man/man1" "$root/usr/share/man/man5" \
	"$root/usr/share/man/man8" "$root/usr/share/doc/relay/examples/grafana" \
	"$root/usr/share/doc/relay/examples/prometheus"

# Static PIE binaries: no libc dependency, yet position-independent (ASLR);
# reproducible: trimmed paths, no VCS stamp.
CGO_ENABLED=0 $GO build -buildmode=pie -trimpath -buildvcs=false \
	-ldflags "-s -w -X main.version=$DEB_VERSION" -o "$root/usr/bin/" ./relay ./tap ./omzmq-bridge

# The embedded default is the conffile, byte for byte.
"$root/usr/bin/relay" default-config >"$root/etc/relay/relay.yaml"
install -m 0644 packaging/relay.default "$root/etc/default/relay"
install -m 0644 packaging/relay.service "$root/lib/systemd/system/relay.service"

# Man pages: generated from these very binaries (the committed docs/man/
# are checked against them by internal/manpage's test).
$GO run ./internal/manpage/genman -bin "$root/usr/bin" -man "$stage/man"
# omzmq-bridge(8)'s omprog example names the bridge where this package puts it,
# as the rsyslog snippets below do (its --help names make install's path).
for f in "$stage"/man/*.[158]; do
	sec=${f##*.}
	sed 's|/usr/local/bin/omzmq|/usr/bin/omzmq|g' "$f" | gzip -9n >"$root/usr/share/man/man$sec/$(basename "$f").gz"
done

doc=$root/usr/share/doc/relay
install -m 0644 packaging/deb/copyright "$doc/copyright"
cat >"$stage/changelog" <<EOT
relay ($DEB_VERSION) unstable; urgency=medium

  * Built from commit $commit; the project's git history has the changes.

 -- rsyslog-zmq relay maintainers <maintainers@users.noreply.h-seed-19bb5e5c.example>  $(date -u -R -d "@$epoch")
EOT
gzip -9n <"$stage/changelog" >"$doc/changelog.gz"
# The rsyslog snippets, pointing at where this package puts omzmq-bridge.
for f in rsyslog-conf/*.conf; do
	sed 's|/usr/local/bin/omzmq-bridge|/usr/bin/omzmq-bridge|g' "$f" >"$doc/examples/$(basename "$f")"
done
sed 's|/usr/local/bin/omzmq-bridge|/usr/bin/omzmq-bridge|g' rsyslog-conf/README.md >"$doc/examples/README.md"
install -m 0644 examples/grafana/relay.json "$doc/examples/grafana/relay.json"
install -m 0644 examples/prometheus/relay-rules.yml "$doc/examples/prometheus/relay-rules.yml"

# Control files.
install -m 0644 packaging/deb/conffiles "$root/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 0755 "packaging/deb/$s" "$root/DEBIAN/$s"; done
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$DEB_VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$size/" \
	packaging/deb/control.in >"$root/DEBIAN/control"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
	xargs -0 md5sum >DEBIAN/md5sums)
chmod 0644 "$root/DEBIAN/md5sums" "$root/DEBIAN/control"

# Reproducible: every file dated at the commit, modes normalised.
find "$root" -type d -exec chmod 0755 {} +
find "$root" -type f ! -path '*/DEBIAN/*' ! -path '*/usr/bin/*' -exec chmod 0644 {} +
chmod 0755 "$root"/usr/bin/*
find "$root" -exec touch -h -d "@$epoch" {} +

mkdir -p "$OUT"
deb=$OUT/relay_${DEB_VERSION}_${ARCH}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
