#!/usr/bin/env bash
# The Debian package, installed for real (run as root; CI does, .ci/run):
# build it, lintian it, dpkg -i it, check what it installed (relay check on
# the conffile, man -l of every page, systemd-analyze verify and security,
# the relay user, the installed relay running as that user and answering
# /healthz, READY=1 on a notify socket), then dpkg --purge it and check that
# nothing is left. Prints "N passed, N failed" last; exits 1 on a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
pass=0 fail=0
ok() { echo "PASS: $*"; pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
finish() { echo "$pass passed, $fail failed"; [ "$fail" = 0 ]; exit $?; }

[ "$(id -u)" = 0 ] || { echo "test-deb: run as root (it installs and purges the package)"; bad "running as root"; finish; }
for tool in dpkg-deb lintian man systemd-analyze adduser python3; do
	command -v "$tool" >/dev/null || { bad "$tool is missing: run make deps (lintian, man-db, systemd, adduser, python3)"; finish; }
done
if dpkg-query -W -f='${Status}' relay 2>/dev/null | grep -q 'install ok'; then
	bad "a relay package is already installed; purge it first (dpkg --purge relay)"
	finish
fi

out=$(mktemp -d)
trap 'rm -rf "$out"; dpkg --purge relay >/dev/null 2>&1' EXIT
deb=$(GO=$GO bash packaging/build-deb.sh "$out" | tail -1)
[ -f "$deb" ] || { bad "make deb produced no package"; finish; }
ok "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"

# Reproducible: a second build is the same file, byte for byte.
deb2=$(GO=$GO bash packaging/build-deb.sh "$out/again" | tail -1)
check "the build is reproducible (same sha256 twice)" cmp -s "$deb" "$deb2"

# lintian: errors fail. The warnings we keep are explained in README.md
# (Debian package): shared-library-lacks-prerequisites (a Go PIE links no
# shared library, not even libc) and, at info level, no init.d script.
lint=$(lintian --pedantic "$deb" 2>&1 | grep -v 'running with root privileges')
echo "$lint"
if echo "$lint" | grep -q '^E:'; then bad "lintian reports errors"; else ok "lintian: no errors"; fi
unexpected=$(echo "$lint" | grep -E '^[WE]:' | grep -v 'shared-library-lacks-prerequisites' || true)
[ -z "$unexpected" ] && ok "lintian: no warning beyond the explained ones" || bad "lintian warnings not explained in README: $unexpected"

# Install.
if DEBIAN_FRONTEND=noninteractive dpkg -i "$deb"; then ok "dpkg -i"; else bad "dpkg -i"; finish; fi
for f in /usr/bin/relay /usr/bin/tap /usr/bin/omzmq-bridge /etc/relay/relay.yaml /etc/default/relay \
	/lib/systemd/system/relay.service /usr/share/doc/relay/copyright /usr/share/doc/relay/examples/forward-tcp.conf \
	/usr/share/doc/relay/examples/omprog-bridge.conf /usr/share/doc/relay/examples/omczmq-push-curve.conf \
	/usr/share/doc/relay/examples/grafana/relay.json \
	/usr/share/doc/relay/examples/prometheus/relay-rules.yml; do
	check "installed $f" test -e "$f"
done
check "the omprog snippet runs /usr/bin/omzmq-bridge" grep -q '/usr/bin/omzmq-bridge' /usr/share/doc/relay/examples/omprog-bridge.conf
check "omzmq-bridge(8)'s omprog example runs /usr/bin/omzmq-bridge" \
	sh -c "zcat /usr/share/man/man8/omzmq-bridge.8.gz | grep -q '/usr/bin/omzmq' && ! zcat /usr/share/man/man8/omzmq-bridge.8.gz | grep -q /usr/local/bin"
conffiles=$(dpkg-query -W -f='${Conffiles}' relay)
check "/etc/relay/relay.yaml is a conffile" grep -q ' /etc/relay/relay.yaml ' <<<"$conffiles"
check "/etc/default/relay is a conffile" grep -q ' /etc/default/relay ' <<<"$conffiles"
check "/etc/relay/relay.yaml is the embedded default" cmp -s /etc/relay/relay.yaml <(/usr/bin/relay default-config)
check "relay check -c /etc/relay/relay.yaml" /usr/bin/relay check -c /etc/relay/relay.yaml
check "relay --version names the package version" grep -qF "$(dpkg-query -W -f='${Version}' relay)" <(/usr/bin/relay --version)

# The system user.
ent=$(getent passwd relay)
uid=$(cut -d: -f3 <<<"$ent")
check "the relay user exists" test -n "$ent"
check "the relay user is a system user (uid $uid)" test "${uid:-1000}" -lt 1000
check "the relay user cannot log in" grep -qE '(nologin|false)$' <<<"$ent"
check "the relay group exists" bash -c 'getent group relay >/dev/null'

# Man pages, as installed.
for page in /usr/share/man/man8/relay.8.gz /usr/share/man/man5/relay.yaml.5.gz /usr/share/man/man1/tap.1.gz /usr/share/man/man8/omzmq-bridge.8.gz; do
	warn=$(MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -l "$page" 2>&1 >/dev/null)
	check "man -l $page renders without a warning" test -z "$warn" -a -n "$(MANWIDTH=80 man -l "$page" 2>/dev/null)"
	[ -z "$warn" ] || echo "$warn"
done
check "man -w relay.yaml finds the page" man -w 5 relay.yaml

# The unit: systemd-analyze verify (it also checks that ExecStart's binaries
# and Documentation='s man pages exist) and the exposure score.
verify=$(systemd-analyze verify /lib/systemd/system/relay.service 2>&1)
echo "$verify"
check "systemd-analyze verify relay.service" test -z "$(grep -i 'relay' <<<"$verify")"
sec=$(systemd-analyze security --offline=true --no-pager /lib/systemd/system/relay.service 2>&1)
score=$(grep -oE 'Overall exposure level for relay.service: [0-9.]+' <<<"$sec" | grep -oE '[0-9.]+$')
echo "systemd-analyze security: ${score:-?} $(grep -oE '[0-9.]+ [A-Z]+ [^ ]*$' <<<"$(grep 'Overall' <<<"$sec")")"
check "systemd-analyze security scores 2.0 or better (OK): $score" awk -v s="${score:-99}" 'BEGIN { exit !(s <= 2.0) }'

# The installed relay runs as the relay user and says READY=1 on its notify
# socket once it serves (the default config on free ports, not to collide).
work=$(mktemp -d)
chmod 0755 "$work"
read -r p1 p2 p3 < <(python3 -c 'import socket
ss=[socket.socket() for _ in range(3)]
[s.bind(("127.0.0.1",0)) for s in ss]
print(*[s.getsockname()[1] for s in ss])')
sed -e "s/10514/$p1/g" -e "s/5556/$p2/g" -e "s/8080/$p3/g" /etc/relay/relay.yaml >"$work/relay.yaml"
chmod 0644 "$work/relay.yaml"
python3 - "$work" "$p3" <<'PY' && ok "the installed relay runs as user relay, sends READY=1, serves /healthz, stops on SIGTERM with STOPPING=1" || bad "the installed relay as user relay"
import os, pwd, signal, socket, subprocess, sys, time, urllib.request
work, port = sys.argv[1], sys.argv[2]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
path = os.path.join(work, "notify")
sock.bind(path); os.chmod(path, 0o666); sock.settimeout(20)
env = dict(os.environ, NOTIFY_SOCKET=path)
p = subprocess.Popen(["/usr/bin/relay", "-c", os.path.join(work, "relay.yaml")], env=env,
                     user="relay", group="relay", extra_groups=[])
msg = sock.recv(4096).decode()
assert msg.startswith("READY=1"), msg
body = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read()
assert body.strip() == b"ok", body
uid = [l for l in open(f"/proc/{p.pid}/status") if l.startswith("Uid:")][0].split()[1:]
assert set(uid) == {str(pwd.getpwnam("relay").pw_uid)}, uid
p.send_signal(signal.SIGTERM)
assert "STOPPING=1" in sock.recv(4096).decode()
assert p.wait(20) == 0
PY
rm -rf "$work"

# Purge: nothing of the package is left (the relay user stays, as Debian's
# packages leave system users).
mkdir -p /var/lib/relay && touch /var/lib/relay/spool-marker # as StateDirectory= would
if dpkg --purge relay; then ok "dpkg --purge"; else bad "dpkg --purge"; fi
check "dpkg no longer knows relay" test -z "$(dpkg-query -W -f='${Status}' relay 2>/dev/null | grep -v 'not-installed')"
for f in /usr/bin/relay /usr/bin/tap /usr/bin/omzmq-bridge /etc/relay /etc/default/relay /lib/systemd/system/relay.service \
	/usr/share/doc/relay /usr/share/man/man8/relay.8.gz /var/lib/relay /etc/systemd/system/multi-user.target.wants/relay.service \
	/var/lib/systemd/deb-systemd-helper-enabled/relay.service.dsh-also /var/lib/systemd/deb-systemd-helper-masked/relay.service; do
	check "purged $f" test ! -e "$f"
done
finish
