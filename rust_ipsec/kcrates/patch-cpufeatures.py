#!/usr/bin/env python3
"""Lets cpufeatures detect x86 features at run time on target_os = "none".

cpufeatures answers "no" for every feature on freestanding targets, which is
what the kernel's Rust target is, so the RustCrypto crates would always take
their portable code. In the kernel CPUID and XGETBV are available; the module
runs every call into those crates inside a kernel FPU section, which is the
precondition the upstream comment is about.
  patch-cpufeatures.py SRC/x86.rs
"""
import sys

path = sys.argv[1]
text = open(path).read()
edits = [
    ('#[cfg(not(any(target_env = "sgx", target_os = "none", target_os = "uefi")))]',
     '#[cfg(not(any(target_env = "sgx", target_os = "uefi")))]'),
    ('#[cfg(any(target_env = "sgx", target_os = "none", target_os = "uefi"))]',
     '#[cfg(any(target_env = "sgx", target_os = "uefi"))]'),
]
for old, new in edits:
    if text.count(old) != 1:
        sys.exit(f"patch-cpufeatures: {path} is not the expected shape; update this patch")
    text = text.replace(old, new)
open(path, "w").write(text)
