#!/bin/sh
# repro boot initramfs: load the few modules needed to reach the root disk, mount it, hand over.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
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
if ! mount -t ext4 -o rw /dev/vda /newroot; then
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
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot /bin/busybox init
