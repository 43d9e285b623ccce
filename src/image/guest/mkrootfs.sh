#!/bin/sh
# Turn an mmdebstrap tarball into an ext4 root image. Runs as root, or under fakeroot so that
# ownership inside the image is right without root.
# usage: mkrootfs.sh TARBALL STAGING OVERLAY OUT.ext4 SIZE_MIB(0=auto)
set -eu
tar=$1 stage=$2 overlay=$3 out=$4 size=$5
mkdir -p "$stage"
tar -xpf "$tar" -C "$stage" --numeric-owner
chown -R 0:0 "$overlay"
cp -a "$overlay"/. "$stage"/
# --variant=extract runs no maintainer scripts, so update-alternatives never made these links.
alt() { [ -e "$stage$1" ] || [ -L "$stage$1" ] || [ ! -e "$stage$2" ] || ln -s "$2" "$stage$1"; }
alt /usr/bin/awk /usr/bin/gawk
alt /usr/bin/nawk /usr/bin/gawk
alt /usr/bin/which /usr/bin/which.debianutils
rm -f "$stage/etc/ssh/ssh_host_"*
ssh-keygen -q -t ed25519 -N '' -C repro-guest -f "$stage/etc/ssh/ssh_host_ed25519_key"
if [ "$size" = 0 ]; then
    used=$(du -sm "$stage" | cut -f1)
    size=$((used * 3 / 2 + 512))
fi
mke2fs -q -t ext4 -L repro-root -d "$stage" -F "$out" "${size}M"
