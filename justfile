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

# Only the fast tests (no guests, no fault suite).
test-fast:
    cargo nextest run --release --workspace -E 'not (binary(guests) | binary(faults))'

# The architecture's invariants on the source (part of `just test`), with the layout report.
tidy:
    cargo test --release --test tidy -- --nocapture --test-threads 1

# Formatting and lints, warnings denied.
lint:
    cargo fmt --all -- --check
    cargo clippy --release --workspace --all-targets -- -D warnings

# What CI runs.
ci: lint test

# The debugging checks on aarch64 (slow under TCG, so not in CI): the vmcore, gdb-multiarch on
# the stopped guest. x86_64's run in `just test`.
debug-aarch64: prepare
    cargo nextest run --release --test guests --run-ignored ignored-only -E 'test(aarch64_a_vmcore)'

# Cold, linux-6.1-debug builds in about 8 minutes for each arch (aarch64 cross-built); then
# about 32 s per mode and arch under TCG. Not CI: that would add half an hour.
# Every crashmod debug-checker mode on linux-6.1-debug, on x86_64 and aarch64, with its title.
debug-checks: prepare
    target/release/repro kernel build linux-6.1-debug --arch x86_64
    target/release/repro kernel build linux-6.1-debug --arch aarch64
    cargo nextest run --release --profile ci --test guests --run-ignored ignored-only -E 'test(/^debug_kernel_/)'

# Run a scenario.
run scenario *args: build
    target/release/repro run {{scenario}} {{args}}

# REPRO_BENCH_COLD=0 skips the cold kernel build.
# Speed: QEMU boot vs repro run, the oops parser, kernel builds (cold, cached, incremental).
bench: prepare
    cargo bench --bench boot
    cargo bench --bench kbuild

# Each seed scenario must reproduce on its default kernel (exit 1) and not on stock Debian 6.1
# (exit 0), and `verify --set fix` must conclude fixed (exit 0), on x86_64 and, where the setup
# exists, on aarch64. Seed 002 reproduces on its widened kernel; on stock kernels (linux-6.1 and
# Debian's) its workload is a capped stress (SECS, 600 s each), where not-reproduced is the
# honest expectation; its verify runs cap the stress at 60 s. Long; not part of CI.
# The seed reproductions and their fixes, with times.
seeds: build
    #!/usr/bin/env bash
    set -uo pipefail
    fail=0
    expect() { local want=$1; shift; echo "+ repro $*"; SECONDS=0; target/release/repro "$@"; local rc=$?;
        echo "= exit $rc (want $want) after ${SECONDS}s"; [ $rc -eq $want ] || fail=1; }
    for s in nfs-updatepage-null nfsd-probe-callback-null iomap-mkwrite-not-uptodate dax-unwritten-fault dax-unwritten-fault-power-cut; do
        expect 1 run $s
        expect 0 run $s --kernel debian-6.1-cloud
        expect 0 verify $s --set fix --runs 2
    done
    # aarch64: seed 003 on XFS over dm, seed 004 on an NVDIMM booted through UEFI.
    for s in iomap-mkwrite-not-uptodate dax-unwritten-fault dax-unwritten-fault-power-cut; do
        expect 1 run $s --arch aarch64
        expect 0 verify $s --set fix --runs 2 --arch aarch64
    done
    s=xfs-symlink-getlink-null
    expect 1 run $s
    expect 0 verify $s --set fix --runs 2 --var SECS=60
    expect 0 verify $s --set candidate-fix --runs 2 --var SECS=60
    expect 1 run $s --arch aarch64
    expect 0 verify $s --set candidate-fix --runs 2 --var SECS=60 --arch aarch64
    expect 0 run $s --kernel linux-6.1
    expect 0 run $s --kernel debian-6.1-cloud
    exit $fail

# Fuzz the oops parser (nightly toolchain and `cargo install cargo-fuzz`); SECONDS=900 by default.
fuzz seconds="900":
    cd crates/oops/fuzz && cargo +nightly fuzz run parse -- -max_total_time={{seconds}} -max_len=65536 -timeout=10

# The history is linux-source-6.1 (one commit) plus twelve commits: eleven comment-only changes
# to files the kernel builds, and the seed-000 recreation patch as the seventh. Kept in the
# cache; made once (about 3 minutes). The bisect builds each candidate incrementally.
# Bisect real kernel history: `repro bisect nfs-updatepage-null` must name the seed-000 commit.
bisect-demo: build
    #!/usr/bin/env bash
    set -euo pipefail
    cache="${REPRO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/repro}"
    demo="$cache/demo/linux-6.1-history"
    export GIT_AUTHOR_NAME="repro demo" GIT_AUTHOR_EMAIL="demo@repro.invalid"
    export GIT_COMMITTER_NAME="repro demo" GIT_COMMITTER_EMAIL="demo@repro.invalid"
    if [ ! -f "$demo/.complete" ]; then
        rm -rf "$demo" && mkdir -p "$demo"
        echo "making $demo from /usr/src/linux-source-6.1.tar.xz"
        tar -xf /usr/src/linux-source-6.1.tar.xz -C "$demo" --strip-components=1
        git -C "$demo" init -q
        git -C "$demo" add -A -f  # Debian's .gitignore ignores the whole top level
        GIT_AUTHOR_DATE="2026-11-01T00:00:00Z" GIT_COMMITTER_DATE="2026-11-01T00:00:00Z" \
            git -C "$demo" commit -q -m "Linux 6.1.192 (Debian linux-source-6.1)"
        git -C "$demo" tag base
        n=0
        for f in fs/nfs/inode.c fs/nfs/dir.c fs/nfs/file.c fs/nfs/read.c fs/nfs/pagelist.c fs/nfs/nfs4proc.c \
                 SEED fs/nfsd/nfssvc.c fs/xfs/xfs_super.c fs/ext4/super.c mm/filemap.c net/sunrpc/clnt.c; do
            n=$((n + 1))
            export GIT_AUTHOR_DATE="2026-11-01T$(printf %02d $n):00:00Z" GIT_COMMITTER_DATE="2026-11-01T$(printf %02d $n):00:00Z"
            if [ "$f" = SEED ]; then
                git -C "$demo" am -q "$PWD/kernels/patches/seed-000-nfs-launder-removes-page.patch"
            else
                printf '/* repro bisect demo: change %d, no functional change */\n' "$n" >> "$demo/$f"
                git -C "$demo" commit -q -am "demo: comment in $f (no functional change)"
            fi
        done
        touch "$demo/.complete"
    fi
    echo "history: $(git -C "$demo" rev-list --count base..HEAD) commits after base"
    SECONDS=0
    target/release/repro bisect nfs-updatepage-null --kernel linux-6.1 --repo "$demo" --good base --bad HEAD
    echo "bisect-demo: ${SECONDS}s"

# The seed scenarios' stock variants on the newest Debian 6.1 and 6.12 packages and on the
# linux-6.1 and linux-6.12 source kernels (scenarios/matrices/real-kernels.toml). Installs
# linux-source-6.12 if missing; the first linux-6.12 build is cold (about 13 minutes here).
nightly-real *args: build
    #!/usr/bin/env bash
    set -euo pipefail
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    [ -f /usr/src/linux-source-6.12.tar.xz ] || $SUDO apt-get install -y -q linux-source-6.12
    SECONDS=0
    target/release/repro nightly --matrix scenarios/matrices/real-kernels.toml {{args}} || rc=$?
    echo "nightly-real: ${SECONDS}s"
    exit ${rc:-0}

# Needs Debian's chromium (`apt-get install chromium`); DIR defaults to the newest nightly.
# Screenshot a nightly's report.html with headless Chromium, as report.png beside it.
nightly-screenshot dir="":
    #!/usr/bin/env bash
    set -euo pipefail
    d="{{dir}}"
    [ -n "$d" ] || d=$(ls -d runs/nightly/*/ | sort | tail -1)
    d=$(realpath "$d")
    chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,1400 \
        --screenshot="$d/report.png" "file://$d/report.html" 2>/dev/null
    echo "$d/report.png"
