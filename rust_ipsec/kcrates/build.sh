#!/bin/bash
# Builds the module's no_std crates (ripsec-esp and its RustCrypto dependencies)
# for the kernel target with cargo, and packs them for kbuild:
#   OUT/kcrates.o   every object of every rlib, merged with `ld -r`
#   OUT/rustflags   --extern/-L flags for the module's Rust crate root
# usage: build.sh KDIR OUT
set -euo pipefail
KDIR=$(cd "$1" && pwd); OUT=$2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
RUSTC=${KRUSTC:-/usr/bin/rustc}
CARGO=${KCARGO:-/usr/bin/cargo}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)

# Codegen flags: exactly those kbuild gave the kernel crate, so our objects agree
# with the kernel's on code model, CET, SSE and mitigations. Lint flags are left out.
cmd=$KDIR/rust/.kernel.o.cmd
if [ -f "$cmd" ]; then
  sed -n 's/^savedcmd_rust\/kernel.o := //p' "$cmd" | tr ' ' '\n' |
    grep -E '^-(C|Z)' | grep -vE '^-Z(binary_dep_depinfo|unstable-options)|^-Copt-level' |
    tr '\n' ' ' > "$OUT/kflags.new"
else
  # Kernel trees without the build's .cmd files (e.g. a headers package): kbuild's
  # x86_64 defaults for 6.12.
  echo "-Cpanic=abort -Cembed-bitcode=n -Clto=n -Cforce-unwind-tables=n -Ccodegen-units=1 \
-Csymbol-mangling-version=v0 -Crelocation-model=static -Zfunction-sections=n \
-Ctarget-feature=-sse,-sse2,-sse3,-ssse3,-sse4.1,-sse4.2,-avx,-avx2 -Zcf-protection=branch \
-Cjump-tables=n -Ztune-cpu=generic -Cno-redzone=y -Ccode-model=kernel \
-Cdebug-assertions=n -Coverflow-checks=y" > "$OUT/kflags.new"
fi
cmp -s "$OUT/kflags.new" "$OUT/kflags" 2>/dev/null || mv "$OUT/kflags.new" "$OUT/kflags"
rm -f "$OUT/kflags.new"

# The portable RustCrypto backend: the AES-NI path needs FPU sections and a patched
# cpufeatures (see shared notes); the kernel datapath issue adds it beside this one.
export RIPSEC_KDIR=$KDIR RIPSEC_KFLAGS=$OUT/kflags
export RUSTC=$RUSTC RUSTC_WRAPPER=$here/rustc-wrapper.sh
export RUSTFLAGS="--cfg aes_force_soft --cfg polyval_force_soft --cfg chacha20_force_soft --cfg poly1305_force_soft"
(cd "$root" && "$CARGO" build -q --release -p ripsec-esp --target x86_64-unknown-linux-gnu \
   --target-dir "$OUT/target" --message-format=json-render-diagnostics) > "$OUT/cargo.json"

rlibs=$(python3 - "$OUT/cargo.json" <<'PY'
import json, sys
seen = []
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact":
        for f in m.get("filenames", []):
            # Only target crates: build-script dependencies are host code.
            if f.endswith(".rlib") and "/x86_64-unknown-linux-gnu/" in f and f not in seen:
                seen.append(f)
print("\n".join(seen))
PY
)
esp=$(echo "$rlibs" | grep -E '/libripsec_esp[-.]' | head -1)
[ -n "$esp" ] || { echo "kcrates: ripsec_esp rlib not produced" >&2; exit 1; }

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
i=0
for r in $rlibs; do
  i=$((i + 1)); mkdir -p "$tmp/$i"
  (cd "$tmp/$i" && ar x "$r" && rm -f lib.rmeta)
done
ld -r -o "$tmp/kcrates.o" $(find "$tmp" -name '*.o' | sort)
cmp -s "$tmp/kcrates.o" "$OUT/kcrates.o" 2>/dev/null || cp "$tmp/kcrates.o" "$OUT/kcrates.o"
echo "--extern ripsec_esp=$esp -L dependency=$OUT/target/x86_64-unknown-linux-gnu/release/deps" > "$OUT/rustflags.new"
cmp -s "$OUT/rustflags.new" "$OUT/rustflags" 2>/dev/null || mv "$OUT/rustflags.new" "$OUT/rustflags"
rm -f "$OUT/rustflags.new"
