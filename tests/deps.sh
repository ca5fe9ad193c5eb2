#!/bin/bash
# Installs everything rust_ipsec needs on a Debian 12 machine, with apt and cargo
# only. Idempotent: a second run checks and returns in about a second.
#   tests/deps.sh [--check]   (--check: exit 1 if something is missing, install nothing)
set -euo pipefail
CACHE=${RIPSEC_CACHE:-$HOME/.cache/rust_ipsec}
BINDGEN_VERSION=0.69.5
# Kernel build (Debian's rustc-web/rust-web-src: the kernel needs core's sources,
# which rustup toolchains here lack), VM, interop peers and test tools.
PKGS=(linux-source-6.12 rustc-web rust-web-src cargo-web libclang-dev clang lld llvm
      bc flex bison libelf-dev libssl-dev cpio kmod dwarves xz-utils rsync make gcc binutils
      python3 openssl qemu-system-x86 busybox-static iproute2 iputils-ping iputils-arping
      iperf3 tcpdump util-linux procps psmisc python3-cryptography
      strongswan-charon strongswan-swanctl libstrongswan-standard-plugins)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
need_bindgen=0; [ -x "$CACHE/tools/bin/bindgen" ] || need_bindgen=1
need_libreswan=0; [ -x "$CACHE/libreswan/usr/libexec/ipsec/pluto" ] || need_libreswan=1

if [ "${1:-}" = --check ]; then
  [ ${#missing[@]} = 0 ] && [ $need_bindgen = 0 ] && [ $need_libreswan = 0 ]; exit
fi

apt_updated=0
apt_update() { [ $apt_updated = 1 ] || { apt-get update -q >/dev/null; apt_updated=1; }; }
if [ ${#missing[@]} != 0 ]; then
  echo "deps: apt-get install ${missing[*]}"
  apt_update
  # Keep daemons from starting on the host: the tests run them inside the VM.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

if [ $need_bindgen = 1 ]; then
  echo "deps: cargo install bindgen-cli $BINDGEN_VERSION"
  cargo install -q --locked --root "$CACHE/tools" bindgen-cli --version "$BINDGEN_VERSION"
fi

# libreswan conflicts with strongSwan as a Debian package: unpack it privately
# and install only its libraries.
if [ $need_libreswan = 1 ]; then
  echo "deps: unpacking libreswan into $CACHE/libreswan"
  apt_update
  d=$(mktemp -d); chmod 777 "$d"; (cd "$d" && apt-get download -q libreswan >/dev/null 2>&1)
  deb=$(ls "$d"/libreswan_*.deb)
  libs=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/(.*)//; s/|.*//; s/ //g' |
         grep -vE '^(|dns-root-data|host|iptables|iproute2|iproute|libc6)$' || true)
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $libs >/dev/null
  rm -rf "$CACHE/libreswan"; mkdir -p "$CACHE"; dpkg -x "$deb" "$CACHE/libreswan"; rm -rf "$d"
fi
exit 0
