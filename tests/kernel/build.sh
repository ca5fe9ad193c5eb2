#!/bin/bash
# Builds the rust_ipsec test kernel from Debian's linux-source-6.12, cached outside the checkout.
#   tests/kernel/build.sh [--print-dir]
# Env: RIPSEC_CACHE (default ~/.cache/rust_ipsec), VARIANT=test|debug, JOBS.
# The build directory is keyed by kernel source version, variant and the config fragments,
# so a changed fragment gets a fresh tree and an unchanged one is reused (make is incremental).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CACHE=${RIPSEC_CACHE:-$HOME/.cache/rust_ipsec}
VARIANT=${VARIANT:-test}
JOBS=${JOBS:-$(( $(nproc) + 1 ))}
TARBALL=$(ls /usr/src/linux-source-6.12.tar.* 2>/dev/null | head -1 || true)
[ -n "$TARBALL" ] || { echo "build.sh: linux-source-6.12 is not installed (run: make deps)" >&2; exit 1; }
SRCVER=$(dpkg-query -W -f='${Version}' linux-source-6.12)
BINDGEN=$CACHE/tools/bin/bindgen
KMAKE=(RUSTC=/usr/bin/rustc HOSTRUSTC=/usr/bin/rustc BINDGEN="$BINDGEN")
frags=("$here/test.config")
case "$VARIANT" in
  test) ;;
  debug) frags+=("$here/debug.config"); KMAKE+=(LLVM=1) ;;
  *) echo "build.sh: unknown VARIANT=$VARIANT (test|debug)" >&2; exit 2 ;;
esac
key=$(cat "${frags[@]}" "$0" | sha256sum | cut -c1-12)
KSRC=$CACHE/src/linux-$SRCVER
KB=$CACHE/kernel/$SRCVER-$VARIANT-$key
if [ "${1:-}" = --print-dir ]; then echo "$KB"; exit 0; fi

if [ ! -f "$KSRC/.unpacked" ]; then
  echo "kernel: unpacking $TARBALL"
  rm -rf "$KSRC"; mkdir -p "$KSRC"
  tar -C "$KSRC" --strip-components=1 -xf "$TARBALL"
  touch "$KSRC/.unpacked"
fi
[ -x "$BINDGEN" ] || { echo "build.sh: $BINDGEN missing (run: make deps)" >&2; exit 1; }
make -s -C "$KSRC" "${KMAKE[@]}" rustavailable

if [ ! -f "$KB/.config" ]; then
  echo "kernel: configuring $KB"
  mkdir -p "$KB"
  make -s -C "$KSRC" O="$KB" "${KMAKE[@]}" tinyconfig > "$KB/config.log" 2>&1
  (cd "$KB" && "$KSRC/scripts/kconfig/merge_config.sh" -m .config "${frags[@]}") >> "$KB/config.log" 2>&1
  make -s -C "$KSRC" O="$KB" "${KMAKE[@]}" olddefconfig >> "$KB/config.log" 2>&1
  bad=0
  while IFS= read -r line; do
    case "$line" in
      CONFIG_*=*) k=${line%%=*}; want=${line#*=} ;;
      "# CONFIG_"*" is not set") k=${line#\# }; k=${k%% *}; want=n ;;
      *) continue ;;
    esac
    got=$(grep -E "^$k=" "$KB/.config" | cut -d= -f2- || true)
    [ "$want" = n ] && [ -z "$got" ] && continue
    [ "$got" = "$want" ] || { echo "kernel config: $k wanted $want, got ${got:-unset}" >&2; bad=1; }
  done < <(cat "${frags[@]}")
  if [ $bad != 0 ]; then mv "$KB/.config" "$KB/.config.rejected"; exit 1; fi
fi

if [ ! -f "$KB/.built" ] || [ ! -f "$KB/arch/x86/boot/bzImage" ]; then
  echo "kernel: building $VARIANT kernel in $KB (-j$JOBS; log: $KB/build.log)"
  t0=$(date +%s)
  if ! make -C "$KSRC" O="$KB" "${KMAKE[@]}" -j"$JOBS" all > "$KB/build.log" 2>&1; then
    tail -40 "$KB/build.log" >&2; exit 1
  fi
  echo "kernel: built in $(( $(date +%s) - t0 )) s"
  touch "$KB/.built"
fi
echo "$KB"
