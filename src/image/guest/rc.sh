#!/bin/busybox sh
# repro guest bring-up, run once by busybox init: filesystems, network, SSH key.
# busybox's own shell runs its applets (mount, ip, mkdir, cp) without exec'ing a binary, and
# /proc and /sys come mounted from the initramfs: each exec of a dynamically linked tool costs
# tens of milliseconds under TCG, on the way to SSH. (`mountpoint -q /proc` took 0.2 s here;
# the shell's own test takes nothing.)
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
[ -e /proc/self/stat ] || mount -t proc proc /proc
[ -d /sys/kernel ] || mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p -m 755 /run/sshd /run/repro
. /etc/repro/run/env
# The words repro put on the command line for the guest. `read` and `case` are the shell's
# own: nothing is exec'd.
read -r cmdline < /proc/cmdline
for word in $cmdline; do
    case "$word" in
    repro.loglevel=*) level="${word#repro.loglevel=}" ;;
    repro.warm) warm=1 ;;
    repro.noagent) noagent=1 ;;
    esac
done
# The guest agent starts now, beside the bring-up, and says hello once /run/repro/up exists; the
# one init starts after the bring-up waits as its stand-in (agent.c's header).
[ -n "$noagent" ] || /usr/lib/repro/agent hold &
# Under TCG (`repro.warm`), the workload's shell and dash start once while the bring-up goes on,
# on the CPU it leaves idle: the workload then finds their pages read and their code translated.
# /run/repro/warmed names what started and exited 0.
if [ -n "$warm" ]; then
    {
        ok=
        if [ -z "$REPRO_SHELL" ] || $REPRO_SHELL -c : </dev/null >/dev/null 2>&1; then
            ok="$REPRO_SHELL"
        fi
        if /bin/sh -c : </dev/null >/dev/null 2>&1; then
            ok="${ok:+$ok, }/bin/sh"
        fi
        echo "$ok" > /run/repro/warmed
    } &
fi
echo "$REPRO_NODE" > /proc/sys/kernel/hostname
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
mkdir -p -m 700 /root/.ssh
cp /etc/repro/run/authorized_keys /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
# repro boots at `loglevel=6` (no drivers' info lines on the console) and names the level the
# guest runs at in `repro.loglevel=N`: from here on the console shows what the kernel prints at
# that level.
[ -z "$level" ] || echo "$level" > /proc/sys/kernel/printk
echo "repro-guest: up $(uname -r)"
# The early agent holds its lock before init starts the stand-in (at most a second's wait).
i=0
while [ -z "$noagent" ] && [ ! -e /run/repro/agent.held ] && [ $i -lt 200 ]; do usleep 5000; i=$((i + 1)); done
: > /run/repro/up
