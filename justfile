# repro's recipes. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# The smoke scenarios, on both arches.
smoke := "smoke-boot smoke-oops"

default:
    @just --list

# Build the release binary.
build:
    cargo build --release --workspace

# The source kernel's cold build takes about 8 minutes on 2 cores.
# Fetch kernels, build images and the source kernel the guest tests need (cached).
prepare: build
    target/release/repro prepare {{smoke}} --arch x86_64 --arch aarch64
    target/release/repro kernel build linux-6.1 --arch x86_64

# The whole test suite: fast tests, then real guests on x86_64 and aarch64.
test: prepare
    cargo nextest run --release --workspace --profile ci

# Only the fast tests (no guests).
test-fast:
    cargo nextest run --release --workspace -E 'not binary(guests)'

# Formatting and lints, warnings denied.
lint:
    cargo fmt --all -- --check
    cargo clippy --release --workspace --all-targets -- -D warnings

# What CI runs.
ci: lint test

# Run a scenario.
run scenario *args: build
    target/release/repro run {{scenario}} {{args}}

# REPRO_BENCH_COLD=0 skips the cold kernel build.
# Speed: QEMU boot vs repro run, the oops parser, kernel builds (cold, cached, incremental).
bench: prepare
    cargo bench --bench boot
    cargo bench --bench kbuild

# Each seed scenario must reproduce on its default kernel (exit 1) and not on stock Debian 6.1
# (exit 0), and `verify --set fix` must conclude fixed (exit 0). Seed 002 is the capped long
# stress on a stock kernel (not-reproduced is the honest expectation). Long; not part of CI.
# The seed reproductions and their fixes, with times.
seeds: build
    #!/usr/bin/env bash
    set -uo pipefail
    fail=0
    expect() { local want=$1; shift; echo "+ repro $*"; SECONDS=0; target/release/repro "$@"; local rc=$?;
        echo "= exit $rc (want $want) after ${SECONDS}s"; [ $rc -eq $want ] || fail=1; }
    for s in nfs-updatepage-null nfsd-probe-callback-null iomap-mkwrite-not-uptodate dax-unwritten-fault; do
        expect 1 run $s
        expect 0 run $s --kernel debian-6.1-cloud
        expect 0 verify $s --set fix --runs 2
    done
    expect 0 run xfs-symlink-getlink-null
    exit $fail
