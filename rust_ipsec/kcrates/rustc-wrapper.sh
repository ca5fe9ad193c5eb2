#!/bin/bash
# RUSTC_WRAPPER used by build.sh: target crates get the kernel's target.json, the
# codegen flags kbuild gives Rust objects, and the kernel's own `core`
# (--sysroot=/dev/null -L $KDIR/rust). Build scripts and proc-macros (no --target)
# are compiled for the host unchanged.
set -euo pipefail
rustc=$1; shift
: "${RIPSEC_KDIR:?}" "${RIPSEC_KFLAGS:?}"
args=(); is_target=0; skip=0
for a in "$@"; do
  if [ $skip = 1 ]; then args+=("$RIPSEC_KDIR/scripts/target.json"); skip=0; continue; fi
  case "$a" in
    --target) is_target=1; skip=1; args+=(--target) ;;
    --target=*) is_target=1; args+=("--target=$RIPSEC_KDIR/scripts/target.json") ;;
    *) args+=("$a") ;;
  esac
done
[ $is_target = 1 ] || exec "$rustc" "$@"
read -r -a kflags < "$RIPSEC_KFLAGS" || true  # no trailing newline
# SIMD code generation for the AEAD crate and the RustCrypto crates under it,
# which the module runs only inside kernel FPU sections; not for ripsec-esp.
case "${CARGO_PKG_NAME:-}" in
  ripsec-esp|ripsec-kcrates) simd=() ;;
  *) simd=(-Ctarget-feature=-soft-float) ;;
esac
exec env RUSTC_BOOTSTRAP=1 "$rustc" "${args[@]}" "${kflags[@]}" "${simd[@]}" \
  --sysroot=/dev/null -L "$RIPSEC_KDIR/rust" -Zunstable-options
