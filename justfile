# repro's recipes. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# The smoke scenarios, on both arches.
smoke := "smoke-boot smoke-oops"

default:
    @just --list

# Build the release binary.
build:
    cargo build --release --workspace

# Fetch kernels and build images the guest tests need (cached; instant when warm).
prepare: build
    target/release/repro prepare {{smoke}} --arch x86_64 --arch aarch64

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

# Speed: a bare QEMU boot to init against `repro run smoke-boot`, on both arches.
bench: prepare
    cargo bench --bench boot
