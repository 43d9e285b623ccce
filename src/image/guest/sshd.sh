#!/bin/busybox sh
# Respawned by init. `repro.nossh` on the kernel command line keeps SSH down (for tests).
read -r cmdline < /proc/cmdline
case " $cmdline " in
*" repro.nossh "*) exec sleep infinity ;;
esac
# -r: no re-exec per connection; each re-exec costs a binary load under TCG.
exec /usr/sbin/sshd -D -e -r
