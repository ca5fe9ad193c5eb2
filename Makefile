# rust_ipsec: top-level build.
#   make            rust_ipsec.ko (against KDIR) and the ripsec binary
#   make deps       install build/test dependencies (apt, cargo); idempotent
#   make kernel     build the Rust-enabled 6.12 test kernel (cached outside the checkout)
#   make test       host tests, then the VM tests
#   make demo       the cluster demo in a VM
#   make bench      benchmarks: one name=value line per figure
#   make fuzz       fuzz targets (FUZZ_RUNS executions each)
# KDIR defaults to the test kernel; on a node whose kernel has CONFIG_RUST:
#   make KDIR=/lib/modules/$(uname -r)/build
SHELL := /bin/bash
RIPSEC_CACHE ?= $(HOME)/.cache/rust_ipsec
export RIPSEC_CACHE
VARIANT ?= test
export VARIANT
KRUSTC ?= /usr/bin/rustc
BINDGEN ?= $(RIPSEC_CACHE)/tools/bin/bindgen
CARGO ?= cargo
FUZZ_RUNS ?= 1000000
BUILD := $(CURDIR)/build

ifeq ($(origin KDIR),undefined)
KDIR_IS_TEST_KERNEL := 1
KDIR = $(shell tests/kernel/build.sh --print-dir 2>/dev/null)
endif

KMAKE = $(MAKE) -C $(KDIR) M=$(CURDIR) RUSTC=$(KRUSTC) HOSTRUSTC=$(KRUSTC) BINDGEN=$(BINDGEN)
# The debug test kernel is built with clang (KASAN with Rust needs it); modules must match.
ifdef KDIR_IS_TEST_KERNEL
ifeq ($(VARIANT),debug)
KMAKE += LLVM=1
endif
endif
MODULE := rust_ipsec/rust_ipsec.ko
RIPSEC := target/release/ripsec

.PHONY: all deps deps-check kernel module helper test test-host test-vm demo bench fuzz clean

all: module helper

deps:
	@tests/deps.sh

# Installs only when something is missing, so `make test` on a ready machine stays quiet.
deps-check:
	@tests/deps.sh --check || tests/deps.sh

kernel: deps-check
	@tests/kernel/build.sh >/dev/null

ifdef KDIR_IS_TEST_KERNEL
module: kernel
endif
module:
	@test -n "$(KDIR)" -a -d "$(KDIR)" || { echo "KDIR '$(KDIR)' is not a kernel build tree" >&2; exit 1; }
	@rust_ipsec/kcrates/build.sh $(KDIR) $(BUILD)/kcrates
	@cmp -s $(BUILD)/kcrates/kcrates.o rust_ipsec/kcrates.o_shipped || cp $(BUILD)/kcrates/kcrates.o rust_ipsec/kcrates.o_shipped
	@$(KMAKE) RIPSEC_RUSTFLAGS="$$(cat $(BUILD)/kcrates/rustflags)" modules 2>&1 | \
	  grep -vE '^make\[[0-9]+\]: (Entering|Leaving) directory' ; exit $${PIPESTATUS[0]}
	@echo "built $(MODULE) against $(KDIR)"

helper:
	@RUSTFLAGS="-D warnings" $(CARGO) build -q --release -p ripsec

test: deps-check all
	@tests/run.sh

test-host: helper
	@tests/run.sh --host-only

test-vm: all
	@tests/run.sh --vm-only

demo: deps-check all
	@tests/demo.sh

bench: deps-check all
	@tests/bench.sh

fuzz:
	@rust_ipsec/esp/fuzz/run.sh $(FUZZ_RUNS)
	@helper/ike/fuzz/run.sh $(FUZZ_RUNS)

clean:
	-@test -n "$(KDIR)" && $(KMAKE) clean >/dev/null 2>&1
	rm -rf $(BUILD) rust_ipsec/kcrates.o_shipped
	$(CARGO) clean
