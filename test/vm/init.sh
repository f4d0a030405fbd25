#!/bin/busybox sh
# PID 1 of the tcpscope kernel-matrix VM: mount what the tracer needs, load
# the modules this kernel builds as modules (packet hooks, sock_diag), run
# the suite, print a result marker the runner parses, power off.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t bpf bpffs /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
# In dependency order (run.sh resolved it from the modules' modinfo).
while read -r m; do
	insmod "/lib/modules/$m.ko" || echo "TCPSCOPE-INSMOD-FAILED $m"
done </lib/modules/order
ip link set lo up
echo "TCPSCOPE-KERNEL $(uname -r)"
echo "TCPSCOPE-FEATURES-BEGIN"
/bin/tcpscope version --features
echo "TCPSCOPE-FEATURES-END"
cd /tmp
TCPSCOPE_BINDIR=/bin TCPSCOPE_E2E=1 TCPSCOPE_TC_MODES=native /bin/kernel.test -test.v -test.count=1 -test.timeout=300s $TCPSCOPE_TEST_ARGS
echo "TCPSCOPE-RESULT rc=$?"
poweroff -f
