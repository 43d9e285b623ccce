#!/bin/busybox sh
# Respawned by init. repro reaches the guest through its agent when QEMU gives the guest the
# agent's port (and the kernel has virtio_console): then sshd would only cost boot time.
# On the kernel command line `repro.nossh` keeps SSH down, and `repro.noagent` keeps the agent
# down and SSH up (for tests).
read -r cmdline < /proc/cmdline
case " $cmdline " in
*" repro.nossh "*) exec sleep infinity ;;
*" repro.noagent "*) exec /usr/sbin/sshd -D -e -r ;;
esac
for name in /sys/class/virtio-ports/*/name; do
    [ -r "$name" ] && read -r port < "$name" && [ "$port" = org.repro.agent ] && exec sleep infinity
done
# -r: no re-exec per connection; each re-exec costs a binary load under TCG.
exec /usr/sbin/sshd -D -e -r
