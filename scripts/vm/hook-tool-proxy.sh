#!/bin/sh
# A Juju hook tool inside a test-bed guest that runs on the host (tests/vm/lib/guest-charm.ts).
#
# Installed under each hook tool's name (config-get, action-set, …) first on the charm's PATH. It
# forwards its argv, environment and (for `--file -`) stdin over the
# virtio-serial port "vmbed.tools"; the host runs the unit simulator's own tool with them and sends
# back the exit code, stdout and stderr. Why: the simulator's tools are Node programs, and starting
# Node under TCG costs seconds per call; forwarding costs a few hundred milliseconds. The charm's
# side of the boundary is unchanged: it spawns an executable on PATH and reads its output.
#
#   guest → host:  CALL <tool> <b64 of: env -0, an empty entry, then argv, all NUL-ended> <b64 stdin|->
#   host → guest:  <exit-code> <b64 stdout|-> <b64 stderr|->
# Every process started here costs ~50 ms under TCG, so the script starts as few as it can, and
# under the test bed's static busybox (applets, no exec) when the guest has it.
if [ -z "${VMBED_PROXY_BB:-}" ] && [ -x /run/vmbed/busybox ]; then
  VMBED_PROXY_BB=1 exec /run/vmbed/busybox sh "$0" "$@"
fi
unset VMBED_PROXY_BB
port=${VMBED_TOOLS_PORT:-/dev/virtio-ports/vmbed.tools}
tool=${0##*/}

wants_stdin=no
prev=
for arg in "$@"; do
  case "$arg" in --file=-) wants_stdin=yes ;; -) [ "$prev" = --file ] && wants_stdin=yes ;; esac
  prev=$arg
done
stdin=-
if [ "$wants_stdin" = yes ]; then
  stdin=$(base64 -w0)
  [ -n "$stdin" ] || stdin=-
fi
payload=$({ env -0; printf '\0'; [ $# -gt 0 ] && printf '%s\0' "$@"; } | base64 -w0)

exec 3<>"$port" || exit 127
printf 'CALL %s %s %s\n' "$tool" "$payload" "$stdin" >&3
IFS=' ' read -r rc out err <&3
exec 3>&-
[ "$out" = - ] || printf '%s' "$out" | base64 -d
[ "$err" = - ] || printf '%s' "$err" | base64 -d >&2
exit "${rc:-126}"
