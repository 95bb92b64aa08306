#!/usr/bin/env bash
# A throwaway one-node Ceph cluster with a RADOS Gateway (S3) for the archive tests: one mon, one
# OSD on a sparse file and one radosgw on a free 127.0.0.1 port, all state under DIR.
#
#   scripts/rgw.sh start DIR [ACCESS_KEY SECRET_KEY]   # writes DIR/endpoint, DIR/pids
#   scripts/rgw.sh stop DIR                            # kills the recorded PIDs, removes DIR
#   scripts/rgw.sh stop-rgw DIR / start-rgw DIR        # only the gateway (store outage tests)
#   scripts/rgw.sh mkbucket DIR BUCKET [lock]          # as the test user (curl --aws-sigv4);
#                                                      # lock: S3 Object Lock on (versioned)
#   scripts/rgw.sh user DIR UID ACCESS SECRET          # another store user (a box's own key)
#   scripts/rgw.sh policy DIR BUCKET FILE              # PUT FILE as the bucket's policy
#
# With RGW_OWNER_PID set, start also leaves a watcher that stops the cluster once that process
# is gone (a test binary killed by a signal leaves no Ceph daemon behind).
#
# Follows ../shared/notes/fleet.md (measured on Debian 12, Ceph 16.2): no auth (crc/secure mon
# client mode, or radosgw loops on -13), pool size 1, chooseleaf type 0, a capped OSD memory
# target. Every wait is bounded and says what did not come up and where its log is. It never
# touches a process it did not start: stop kills only the PIDs written to DIR/pids.
set -euo pipefail

die() { echo "rgw.sh: $*" >&2; exit 1; }

# wait_for SECONDS WHAT CMD...: polls CMD every 0.2 s.
wait_for() {
  local secs=$1 what=$2; shift 2
  local end=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep 0.2
  done
  echo "rgw.sh: $what up after $(( secs - (end - $(date +%s)) )) s" >&2
}

free_port() {
  python3 - <<'EOF'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
EOF
}

start_rgw() {
  local d=$1
  radosgw -c "$d/ceph.conf" -n client.rgw.a -f >>"$d/log/rgw.out" 2>&1 &
  echo "rgw $!" >>"$d/pids"
  wait_for 60 radosgw curl -sf "$(cat "$d/endpoint")/" \
    || die "radosgw did not answer on $(cat "$d/endpoint") within 60 s; see $d/log/"
}

stop_rgw() {
  local d=$1 pid
  for pid in $(awk '$1 == "rgw" {print $2}' "$d/pids"); do
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  sed -i '/^rgw /d' "$d/pids"
}

cmd=${1:-}; d=${2:-}
[ -n "$cmd" ] && [ -n "$d" ] || die "usage: $0 start|stop|stop-rgw|start-rgw|mkbucket DIR ..."

case "$cmd" in
start)
  access=${3:-callrec-test}; secret=${4:-callrec-test-secret}
  for b in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph-authtool uuidgen curl python3; do
    command -v "$b" >/dev/null || die "$b not found; run: make archive-deps (apt-get install -y ceph-mon ceph-osd radosgw ceph-common uuid-runtime curl)"
  done
  [ ! -e "$d/pids" ] || die "$d/pids exists: a cluster may be running there; run: $0 stop $d"
  mkdir -p "$d/mon" "$d/osd" "$d/rgw" "$d/run" "$d/log"
  d=$(cd "$d" && pwd)
  : >"$d/pids"
  export CEPH_CONF=$d/ceph.conf
  fsid=$(uuidgen)
  mon_port=$(free_port); rgw_port=$(free_port)
  cat >"$d/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc secure
ms bind ipv6 = false
run dir = $d/run
admin socket = $d/run/\$name.asok
log file = $d/log/\$name.log
pid file = $d/run/\$name.pid
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
mon data = $d/mon/\$cluster-\$id
osd data = $d/osd/\$cluster-\$id
osd objectstore = bluestore
bluestore block create = true
bluestore block size = 10737418240
osd memory target = 939524096
osd max object size = 134217728
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw data = $d/rgw
rgw dns name = localhost
EOF
  echo "http://127.0.0.1:$rgw_port" >"$d/endpoint"
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$d/monmap" >/dev/null
  ceph-authtool --create-keyring "$d/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-mon -c "$d/ceph.conf" --mkfs -i a --monmap "$d/monmap" --keyring "$d/mon.keyring" \
    >>"$d/log/mkfs.out" 2>&1 || die "ceph-mon --mkfs failed; see $d/log/mkfs.out"
  ceph-mon -c "$d/ceph.conf" -i a -f >>"$d/log/mon.out" 2>&1 &
  echo "mon $!" >>"$d/pids"
  wait_for 30 mon ceph -c "$d/ceph.conf" -s --connect-timeout 2 \
    || die "ceph-mon did not answer within 30 s; see $d/log/"
  # The OSD must boot with the uuid the mon registered, or the mon never marks it up.
  osd_uuid=$(uuidgen)
  osd_id=$(ceph -c "$d/ceph.conf" osd new "$osd_uuid" 2>>"$d/log/mkfs.out") \
    || die "ceph osd new failed; see $d/log/mkfs.out"
  mkdir -p "$d/osd/ceph-$osd_id"
  ceph-osd -c "$d/ceph.conf" -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" >>"$d/log/mkfs.out" 2>&1 \
    || die "ceph-osd --mkfs failed; see $d/log/mkfs.out"
  ceph-osd -c "$d/ceph.conf" -i "$osd_id" -f >>"$d/log/osd.out" 2>&1 &
  echo "osd $!" >>"$d/pids"
  osd_up() { ceph -c "$d/ceph.conf" osd stat --connect-timeout 2 2>/dev/null | grep -q '1 up'; }
  wait_for 40 osd osd_up || die "the OSD did not come up within 40 s; see $d/log/"
  start_rgw "$d"
  radosgw-admin -c "$d/ceph.conf" user create --uid=test --display-name=test \
    --access-key="$access" --secret="$secret" >>"$d/log/user.out" 2>&1 \
    || die "radosgw-admin user create failed; see $d/log/user.out"
  printf '%s\n%s\n' "$access" "$secret" >"$d/keys"
  if [ -n "${RGW_OWNER_PID:-}" ]; then
    owner=$RGW_OWNER_PID self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
    setsid bash -c 'while kill -0 "$1" 2>/dev/null && [ -e "$2/pids" ]; do sleep 1; done; "$3" stop "$2"' \
      rgw-watch "$owner" "$d" "$self" </dev/null >/dev/null 2>&1 &
  fi
  cat "$d/endpoint"
  ;;
stop)
  [ -e "$d/pids" ] || { rm -rf "$d"; exit 0; }
  # Gateway first, then the OSD, then the mon: each one's clients go before it does.
  for role in rgw osd mon; do
    for pid in $(awk -v r="$role" '$1 == r {print $2}' "$d/pids"); do
      kill "$pid" 2>/dev/null || true
    done
  done
  for pid in $(awk '{print $2}' "$d/pids"); do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$d"
  ;;
stop-rgw) stop_rgw "$d" ;;
start-rgw) export CEPH_CONF=$d/ceph.conf; start_rgw "$d" ;;
mkbucket)
  bucket=${3:?bucket name}
  lock=()
  [ "${4:-}" != lock ] || lock=(-H "x-amz-bucket-object-lock-enabled: true")
  { read -r access; read -r secret; } <"$d/keys"
  code=$(curl -s -o "$d/log/mkbucket.out" -w '%{http_code}' -X PUT \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$access:$secret" \
    -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
    "${lock[@]}" "$(cat "$d/endpoint")/$bucket")
  [ "$code" = 200 ] || die "creating bucket $bucket: HTTP $code: $(cat "$d/log/mkbucket.out")"
  ;;
policy)
  bucket=${3:?bucket name}; file=${4:?policy file}
  { read -r access; read -r secret; } <"$d/keys"
  sha=$(sha256sum "$file" | cut -d' ' -f1)
  code=$(curl -s -o "$d/log/policy.out" -w '%{http_code}' -X PUT --data-binary "@$file" \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$access:$secret" \
    -H "x-amz-content-sha256: $sha" -H "Content-Type: application/json" \
    "$(cat "$d/endpoint")/$bucket?policy=")
  case "$code" in 200|204) ;; *) die "setting the policy of $bucket: HTTP $code: $(cat "$d/log/policy.out")" ;; esac
  ;;
user)
  uid=${3:?uid}; access=${4:?access key}; secret=${5:?secret key}
  radosgw-admin -c "$d/ceph.conf" user create --uid="$uid" --display-name="$uid" \
    --access-key="$access" --secret="$secret" >>"$d/log/user.out" 2>&1 \
    || die "radosgw-admin user create $uid failed; see $d/log/user.out"
  ;;
*) die "unknown command $cmd: use start, stop, stop-rgw, start-rgw, mkbucket, policy or user" ;;
esac
