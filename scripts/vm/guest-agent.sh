#!/bin/sh
# Command runner of the VM test bed (tests/vm/lib/guest.ts is the other end).
#
# Runs inside the guest (tier 1: in the chroot over the host's root; tier 2: as a systemd service
# of the Debian image) on a virtio-serial port. POSIX sh + base64 + timeout only (coreutils or
# busybox applets), so the same file serves both tiers; tier 1 runs it under the static busybox,
# whose applets save an exec per step under TCG. Commands always run under the guest's /bin/sh.
# Protocol, one line each way, so no byte of a command's output can be
# mistaken for framing:
#   host → guest:  <id> <timeout-seconds> <base64 of the shell script>
#   guest → host:  RESULT <id> <exit-code> <base64 of stdout> <base64 of stderr>
# An empty base64 field is written as "-". The agent says "READY <kernel release>" once at start.
set -u
port=${1:?usage: guest-agent.sh <virtio-serial port device>}
work=${VMBED_AGENT_DIR:-/run/vmbed-agent}
mkdir -p "$work"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8

exec 3<>"$port"
printf 'READY %s\n' "$(uname -r)" >&3

b64() {
  # base64 of a file on one line; "-" when empty so the fields never collapse.
  if [ -s "$1" ]; then base64 -w0 "$1"; else printf -- '-'; fi
}

while IFS=' ' read -r id secs script <&3; do
  [ -n "$id" ] || continue
  printf '%s' "$script" | base64 -d >"$work/cmd" 2>"$work/err" || {
    printf 'RESULT %s 125 - %s\n' "$id" "$(b64 "$work/err")" >&3
    continue
  }
  cd /
  timeout -s KILL "$secs" /bin/sh "$work/cmd" </dev/null >"$work/out" 2>"$work/err"
  rc=$?
  printf 'RESULT %s %s %s %s\n' "$id" "$rc" "$(b64 "$work/out")" "$(b64 "$work/err")" >&3
done
