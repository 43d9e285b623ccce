#!/bin/sh
# repro boot initramfs: load the few modules needed to reach the root disk, mount it, hand over.
# busybox's shell finds its applets by name without links in /bin (`busybox --install -s`
# made some 400 links, 55 ms of a boot under TCG), re-executing itself through
# /proc/self/exe: so /proc comes first, through busybox by name.
/bin/busybox mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
if [ -f /lib/modules/boot/order ]; then
    while read -r m; do
        insmod "/lib/modules/boot/$m" 2>/dev/null || echo "repro-init: insmod $m failed"
    done < /lib/modules/boot/order
fi
. /repro/env
i=0
while [ ! -b /dev/vda ] && [ $i -lt 400 ]; do usleep 25000; i=$((i + 1)); done
# noinit_itable: the image's inode tables were never zeroed (mke2fs's lazy default), and the
# kernel would zero them now, into a fresh qcow2 overlay, while the guest boots.
if ! mount -t ext4 -o rw,noinit_itable /dev/vda /newroot; then
    echo "repro-init: cannot mount the root disk /dev/vda"
    poweroff -f
fi
if [ -n "$REPRO_MODULES_DEV" ]; then
    mkdir -p "/newroot/lib/modules/$(uname -r)"
    mount -t ext4 -o ro "$REPRO_MODULES_DEV" "/newroot/lib/modules/$(uname -r)" ||
        echo "repro-init: cannot mount the modules disk $REPRO_MODULES_DEV"
fi
mkdir -p /newroot/etc/repro/run
cp /repro/* /newroot/etc/repro/run/
# busybox runs the guest's bring-up next: read it in one pass, not page by page as it runs.
cat /newroot/bin/busybox > /dev/null
mount --move /dev /newroot/dev
mount --move /sys /newroot/sys
mount --move /proc /newroot/proc
# Named through busybox: its shell would re-exec itself through /proc/self/exe, moved by now.
exec /bin/busybox switch_root /newroot /bin/busybox init
