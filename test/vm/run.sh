#!/usr/bin/env bash
# Runs the kernel-portable end-to-end suite (test/kernel) under Debian's
# 6.1 and 6.12 cloud kernels in qemu (software emulation), and natively on
# this host. Kernel packages are downloaded once into .cache/vm and reused.
#
#   test/vm/run.sh              # host, 6.1, 6.12
#   test/vm/run.sh 6.12         # only the 6.12 VM
#   TEST_ARGS='-test.run X' test/vm/run.sh 6.1
#
# Needs root, qemu-system-x86, busybox-static, xz-utils (make deps-vm).
# Writes per-kernel logs and features to .cache/vm/results/, and the
# features table to docs/kernels.md when every run passed.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cache=$root/.cache/vm
results=$cache/results
series=("$@")
[ ${#series[@]} -gt 0 ] || series=(host 6.1 6.12)
mkdir -p "$cache/debs" "$results"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

log() { printf '== %s\n' "$*" >&2; }

# --- binaries: static, so they run on a bare busybox initramfs
log "build static binaries"
(
	cd "$root"
	export CGO_ENABLED=0
	go build -trimpath -o "$work/bin/tcpscope" ./cmd/tcpscope
	go build -trimpath -o "$work/bin/tsrv" ./test/peer
	cp "$work/bin/tsrv" "$work/bin/tcli"
	go test -c -trimpath -o "$work/bin/kernel.test" ./test/kernel
)

# --- Debian kernel packages, in a private apt state (the system's sources stay as they are)
aptdir=$cache/apt
apt_opts=(-o "Dir::Etc::SourceList=$aptdir/sources.list" -o Dir::Etc::SourceParts=/dev/null
	-o "Dir::State::Lists=$aptdir/lists" -o "Dir::Cache=$aptdir" -o Debug::NoLocking=1)
apt_update() {
	mkdir -p "$aptdir/lists/partial" "$aptdir/archives/partial"
	cat > "$aptdir/sources.list" <<-SRC
	deb http://deb.debian.org/debian bookworm main
	deb http://deb.debian.org/debian bookworm-updates main
	deb http://deb.debian.org/debian-security bookworm-security main
	deb http://deb.debian.org/debian bookworm-backports main
	SRC
	# Once a day is enough to find the newest kernel of each series.
	if [ -z "$(find "$aptdir/lists" -name '*Packages*' -mtime -1 2>/dev/null | head -n 1)" ]; then
		log "apt update (private lists in $aptdir)"
		apt-get "${apt_opts[@]}" update -q >/dev/null
	fi
}
newest_package() { # series -> newest linux-image-*-cloud-amd64 of it
	local pattern
	case $1 in
	6.1) pattern='^linux-image-6\.1\.0-[0-9]+-cloud-amd64$' ;;
	*) pattern="^linux-image-${1//./\\.}\\.[0-9]+\\+deb12-cloud-amd64\$" ;;
	esac
	apt-cache "${apt_opts[@]}" search --names-only "$pattern" | awk '{print $1}' | sort -V | tail -n 1
}
fetch_kernel() { # series -> directory with vmlinuz and modules/
	local pkg deb dir
	pkg=$(newest_package "$1")
	[ -n "$pkg" ] || { echo "no kernel package for $1" >&2; return 1; }
	dir=$cache/kernels/$pkg
	if [ ! -f "$dir/vmlinuz" ]; then
		log "download $pkg"
		(cd "$cache/debs" && apt-get "${apt_opts[@]}" download "$pkg" >/dev/null 2>&1)
		deb=$(ls "$cache/debs/${pkg}"_*.deb | tail -n 1)
		rm -rf "$dir.tmp" && mkdir -p "$dir.tmp/x" "$dir.tmp/modules"
		dpkg-deb -x "$deb" "$dir.tmp/x"
		cp "$dir.tmp"/x/boot/vmlinuz-* "$dir.tmp/vmlinuz"
		for m in veth sch_ingress cls_bpf; do
			f=$(find "$dir.tmp/x/lib/modules" -name "$m.ko*" | head -n 1)
			case $f in
			*.xz) xz -dc "$f" > "$dir.tmp/modules/$m.ko" ;;
			*.zst) zstd -dqc "$f" > "$dir.tmp/modules/$m.ko" ;;
			*) cp "$f" "$dir.tmp/modules/$m.ko" ;;
			esac
		done
		rm -rf "$dir.tmp/x" && mv "$dir.tmp" "$dir"
	fi
	echo "$dir"
}

# --- initramfs: busybox, the kernel's modules, the binaries, init
make_initramfs() { # kernel dir -> initramfs path
	local k=$1 ir=$work/initramfs-$(basename "$1")
	rm -rf "$ir" && mkdir -p "$ir"/{bin,dev,proc,sys,run,tmp,lib/modules}
	cp /bin/busybox "$ir/bin/busybox"
	cp "$k"/modules/*.ko "$ir/lib/modules/"
	cp "$work"/bin/* "$ir/bin/"
	cp "$root/test/vm/init.sh" "$ir/init" && chmod +x "$ir/init"
	(cd "$ir" && find . | cpio -o -H newc --quiet | gzip -1) > "$ir.cpio.gz"
	echo "$ir.cpio.gz"
}

# boot kernel dir, initramfs, log file -> 0 pass, 1 fail, 2 no result marker
boot() {
	timeout 600 qemu-system-x86_64 -accel tcg,thread=single -cpu max -smp 2 -m 2048 \
		-nographic -no-reboot -kernel "$1/vmlinuz" -initrd "$2" \
		-append "console=ttyS0 panic=-1 quiet TCPSCOPE_TEST_ARGS=\"${TEST_ARGS:-}\"" \
		</dev/null >"$3" 2>&1 || true
	if grep -q 'TCPSCOPE-RESULT rc=0' "$3"; then return 0; fi
	if grep -q 'TCPSCOPE-RESULT rc=' "$3"; then return 1; fi
	return 2
}

status=0
for s in "${series[@]}"; do
	out=$results/$s
	mkdir -p "$out"
	start=$(date +%s)
	if [ "$s" = host ]; then
		log "host $(uname -r): suite natively"
		rc=0
		(cd /tmp && TCPSCOPE_BINDIR=$work/bin TCPSCOPE_E2E=1 "$work/bin/kernel.test" -test.v -test.count=1 ${TEST_ARGS:-}) >"$out/log" 2>&1 || rc=$?
		"$work/bin/tcpscope" version --features >"$out/features" 2>&1 || true
		uname -r >"$out/kernel"
	else
		apt_update
		k=$(fetch_kernel "$s")
		ir=$(make_initramfs "$k")
		log "boot $(basename "$k") under qemu (TCG)"
		rc=0
		boot "$k" "$ir" "$out/log" || rc=$?
		if [ $rc -eq 2 ]; then
			log "no result marker: infrastructure failure, retrying once"
			rc=0
			boot "$k" "$ir" "$out/log" || rc=$?
		fi
		sed -n '/TCPSCOPE-FEATURES-BEGIN/,/TCPSCOPE-FEATURES-END/p' "$out/log" | sed '1d;$d' | tr -d '\r' >"$out/features"
		grep -ao 'TCPSCOPE-KERNEL [^[:space:]]*' "$out/log" | head -n 1 | cut -d' ' -f2 >"$out/kernel"
	fi
	secs=$(($(date +%s) - start))
	case $rc in
	0) log "$s: PASS (${secs}s)"; echo pass >"$out/result" ;;
	2) log "$s: NO RESULT twice (infrastructure); log: $out/log"; echo infra >"$out/result"; status=1 ;;
	*) log "$s: FAIL (${secs}s); log: $out/log"; echo fail >"$out/result"; status=1
	   grep -E -- '--- FAIL|^\s+\S+_test\.go:[0-9]+:' "$out/log" | head -n 20 >&2 || true ;;
	esac
done

if [ $status -eq 0 ] && [ ${#series[@]} -eq 3 ]; then
	"$root/test/vm/features-table.sh" "$results" host 6.1 6.12 >"$root/docs/kernels.md"
	log "wrote docs/kernels.md"
fi
exit $status
