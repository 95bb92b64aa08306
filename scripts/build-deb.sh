#!/bin/sh
# `make deb`: builds the Debian package callrec_<version>_<arch>.deb from a staged tree, with
# `dpkg-deb --root-owner-group --build` (no cargo-deb, no debhelper: every file's place in the
# package is one line below).
#
#   scripts/build-deb.sh [OUTDIR]          (default target/deb; prints the .deb's path last)
#   CALLREC_BIN=path   the binary to package (default target/release/callrec; `make deb` builds it)
#   DEB_VERSION=v      the package version (default: Cargo.toml's version; the install test
#                      builds a lower one, e.g. 0.1.0~test1, to test upgrades)
#   DEB_MAINTAINER="Name <mail>"  the Maintainer field
#   DEB_COMPRESS=gzip  dpkg-deb compressor (default xz; the test uses gzip: 10x faster)
#
# What goes where:
#   /usr/bin/callrec                          the binary (stripped; debug info stays in target/)
#   /lib/systemd/system/callrec*.service      systemd/*.service with /usr/local → /usr
#   /usr/lib/sysusers.d/callrec.conf          systemd/callrec.sysusers.conf
#   /usr/lib/tmpfiles.d/callrec.conf          systemd/callrec.tmpfiles.conf
#   /lib/udev/rules.d/90-callrec-seats.rules  hw/udev/90-callrec-seats.rules (every rule commented
#                                             out; the admin's copy in /etc/udev/rules.d wins)
#   /etc/callrec/callrec.toml                 conffile: hw/callrec.example.toml with [box] id
#                                             commented out, so `callrec config check` (and so
#                                             every unit's ExecStartPre) refuses it until edited
#   /usr/share/doc/callrec/                   copyright, changelog.gz, README.md, hw-README.md, docs/*.md
#   maintainer scripts                        packaging/deb/{postinst,prerm,postrm}
set -eu
cd "$(dirname "$0")/.."

bin=${CALLREC_BIN:-target/release/callrec}
out=${1:-target/deb}
version=${DEB_VERSION:-$(sed -n '/^\[package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)}
arch=$(dpkg --print-architecture)
maintainer=${DEB_MAINTAINER:-callrec maintainers <callrec@example.org>}
[ -x "$bin" ] || { echo "build-deb: no binary at $bin (run make build, or set CALLREC_BIN)" >&2; exit 1; }
[ -n "$version" ] || { echo "build-deb: no version in Cargo.toml" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/callrec
umask 022

# --- files ---------------------------------------------------------------------------------
install -D -m 0755 "$bin" "$root/usr/bin/callrec"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/callrec"

mkdir -p "$root/lib/systemd/system"
for u in systemd/*.service; do
  sed -e 's#/usr/local/bin/callrec#/usr/bin/callrec#g' \
      -e 's#/usr/local/share/doc/callrec#/usr/share/doc/callrec#g' \
      "$u" > "$root/lib/systemd/system/$(basename "$u")"
  chmod 0644 "$root/lib/systemd/system/$(basename "$u")"
done
if grep -l /usr/local "$root"/lib/systemd/system/*.service; then
  echo "build-deb: a unit still names /usr/local" >&2; exit 1
fi

install -D -m 0644 systemd/callrec.sysusers.conf "$root/usr/lib/sysusers.d/callrec.conf"
install -D -m 0644 systemd/callrec.tmpfiles.conf "$root/usr/lib/tmpfiles.d/callrec.conf"
install -D -m 0644 hw/udev/90-callrec-seats.rules "$root/lib/udev/rules.d/90-callrec-seats.rules"
# The shipped rules file must stay inert: no active line may rename a card.
if grep -v '^#' hw/udev/90-callrec-seats.rules | grep -q 'ATTR{id}='; then
  echo "build-deb: hw/udev/90-callrec-seats.rules has an active rename rule; ship examples only" >&2
  exit 1
fi

# The conffile: 0640 (tokens and secrets go here; postinst makes it root:callrec).
install -d -m 0750 "$root/etc/callrec"
{
  cat <<'HEAD'
# /etc/callrec/callrec.toml: NOT CONFIGURED YET. Nothing starts recording until it is:
# every callrec unit runs `callrec config check` first (ExecStartPre) and refuses this file
# while [box] id below is commented out. Describe your seats (see /usr/share/doc/callrec/
# hw-README.md, "Mapping seats"), set [box] id, then run
#     callrec --config /etc/callrec/callrec.toml config check
#     systemctl enable --now callrec-record callrec-web
#
HEAD
  # shellcheck disable=SC2016 # the backquotes are text in a TOML comment
  sed -e 's/^\[box\]$/[box]  # NOT CONFIGURED: set id below, then run `callrec config check`/' \
      -e 's/^id = "floor-1"$/# id = "floor-1"   # required: uncomment and name this box/' \
      hw/callrec.example.toml
} > "$root/etc/callrec/callrec.toml"
chmod 0640 "$root/etc/callrec/callrec.toml"
grep -q '^# id = "floor-1"' "$root/etc/callrec/callrec.toml" ||
  { echo "build-deb: could not unset [box] id in the conffile" >&2; exit 1; }

doc=$root/usr/share/doc/callrec
install -d -m 0755 "$doc"
install -m 0644 README.md "$doc/README.md"
install -m 0644 hw/README.md "$doc/hw-README.md"
# The guides per reader, under docs/ so that the README's links resolve.
install -d -m 0755 "$doc/docs"
for guide in admin qa-lead compliance integration internals; do
  install -m 0644 "docs/$guide.md" "$doc/docs/$guide.md"
done
first=$(git log --reverse --format=%ad --date=format:%Y 2>/dev/null | head -1)
last=$(git log -1 --format=%ad --date=format:%Y 2>/dev/null || date +%Y)
years=${first:-$last}; [ "$years" = "$last" ] || years="$years-$last"
cat > "$doc/copyright" <<COPY
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: callrec

Files: *
Copyright: $years the callrec authors
License: Apache-2.0

License: Apache-2.0
 Licensed under the Apache License, Version 2.0 (the "License"); you may not
 use this file except in compliance with the License. You may obtain a copy of
 the License at http://www.apache.org/licenses/LICENSE-2.0
 .
 Unless required by applicable law or agreed to in writing, software
 distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
 WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
 License for the specific language governing permissions and limitations under
 the License.
 .
 On Debian systems, the full text of the Apache License, Version 2.0 can be
 found in the file /usr/share/common-licenses/Apache-2.0.
COPY
chmod 0644 "$doc/copyright"
# A native package (no Debian revision): lintian wants changelog.gz. The date is the last
# commit's, so two builds of one commit are identical.
date=$(git log -1 --format=%cD 2>/dev/null || date -R)
printf 'callrec (%s) unstable; urgency=medium\n\n  * Package built from %s (git %s).\n\n -- %s  %s\n' \
  "$version" "$(git rev-parse --abbrev-ref HEAD 2>/dev/null || echo source)" \
  "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$maintainer" "$date" |
  gzip -9n > "$doc/changelog.gz"
chmod 0644 "$doc/changelog.gz"

# --- control -------------------------------------------------------------------------------
install -d -m 0755 "$root/DEBIAN"
for s in postinst prerm postrm; do install -m 0755 "packaging/deb/$s" "$root/DEBIAN/$s"; done
echo /etc/callrec/callrec.toml > "$root/DEBIAN/conffiles"

# Depends: what the binary links, with versions, from dpkg-shlibdeps (it wants a debian/
# directory: a throwaway one); without it, the packages owning the libraries ldd finds.
depends=$(
  cd "$stage" && mkdir -p debian && printf 'Source: callrec\n\nPackage: callrec\nArchitecture: any\n' > debian/control &&
  dpkg-shlibdeps -O callrec/usr/bin/callrec 2>/dev/null | sed -n 's/^shlibs:Depends=//p'
) || depends=""
if [ -z "$depends" ]; then
  depends=$(ldd "$root/usr/bin/callrec" | awk '/=> \//{print $3}' |
    while read -r lib; do dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib"; done |
    cut -d: -f1 | sort -u | paste -sd, | sed 's/,/, /g')
fi
[ -n "$depends" ] || { echo "build-deb: could not compute Depends" >&2; exit 1; }

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CTRL
Package: callrec
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $size
Depends: $depends
Section: sound
Priority: optional
Description: call-recording and QA appliance
 callrec records call-centre seats (USB headsets, line taps, multichannel
 interfaces) into Ogg Opus files with a SQLite index, and serves search,
 replay, QA scorecards, evidence export, retention and legal holds over
 HTTPS. One binary; systemd units for the recorder, the web service and
 the archive shipper.
 .
 Nothing starts after installation: edit /etc/callrec/callrec.toml, check
 it with "callrec config check", then enable the units.
CTRL
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
  xargs -0 md5sum > DEBIAN/md5sums)
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

mkdir -p "$out"
deb=$out/callrec_${version}_${arch}.deb
dpkg-deb --root-owner-group -Z"${DEB_COMPRESS:-xz}" --build "$root" "$deb" >/dev/null
echo "$deb"
