#!/bin/sh
# Installs the Debian packages named as arguments that are missing: as root with apt-get,
# otherwise it prints the one line to run and fails. Every make target that needs packages
# (deps, fuzz-deps, archive-deps, cutfs) calls this, so the rule is written once.
missing=""
for p in "$@"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || missing="$missing $p"
done
missing=${missing# }
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "installing: $missing"
  # shellcheck disable=SC2086 # one word per package
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing) >/dev/null || exit 1
else
  echo "missing packages; run:  sudo apt-get install -y $missing"
  exit 1
fi
