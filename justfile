# repro's recipes. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# The smoke scenarios, on both arches.
smoke := "smoke-boot smoke-oops"

default:
    @just --list

# Build the release binary.
build:
    cargo build --release --workspace

# Fetch kernels, build images and the source kernel the guest tests need (cached; instant when
# warm; the source kernel's cold build takes about 8 minutes on 2 cores).
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

# Speed: a bare QEMU boot to init against `repro run smoke-boot` on both arches, the oops
# parser, and kernel builds (cold in a scratch cache, cache hit, one-file incremental rebuild;
# REPRO_BENCH_COLD=0 skips the cold build).
bench: prepare
    cargo bench --bench boot
    cargo bench --bench kbuild

# The seed reproductions: each scenario must reproduce on its default kernel (exit 1), not on
# the stock kernel (exit 0), and `verify --set fix` must conclude fixed (exit 0). Long; not CI.
seeds: build
    #!/usr/bin/env bash
    set -uo pipefail
    fail=0
    expect() { local want=$1; shift; echo "+ repro $*"; SECONDS=0; target/release/repro "$@"; local rc=$?;
        echo "= exit $rc (want $want) after ${SECONDS}s"; [ $rc -eq $want ] || fail=1; }
    expect 1 run nfs-updatepage-null
    expect 0 run nfs-updatepage-null --kernel debian-6.1-cloud
    expect 0 verify nfs-updatepage-null --set fix --runs 2
    exit $fail
