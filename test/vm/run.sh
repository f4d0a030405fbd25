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
# features table to docs/kernels.md when every run passed (CI then runs
# test/vm/check-kernels-doc.sh: the committed file must say the same).
#
# Offline, it uses the package lists and kernels already cached. A kernel
# is unpacked into a temporary directory and renamed into .cache/vm/kernels
# only once complete (with its modules in load order), so an interrupted or
# failed run never leaves a half-unpacked kernel behind.
set -Eeuo pipefail
shopt -s inherit_errexit
root=$(cd "$(dirname "$0")/../.." && pwd)
cache=$root/.cache/vm
results=$cache/results
kernels=$cache/kernels

# Modules the suite needs that Debian's cloud kernels build as modules
# (their dependencies are added, and everything loaded, in dependency
# order): veth, clsact (sch_ingress) and cls_bpf for the packet hooks on
# kernels without TCX, inet_diag + tcp_diag for sock_diag (the tracer's
# listing of preexisting sockets at start-up).
modules=(veth sch_ingress cls_bpf inet_diag tcp_diag)

log() { printf '== %s\n' "$*" >&2; }
warn() { printf '== WARNING: %s\n' "$*" >&2; }
die() { printf '== ERROR: %s\n' "$*" >&2; exit 1; }
trap 'printf "== ERROR: %s: line %s: %s failed (status %s)\n" "${0##*/}" "$LINENO" "$BASH_COMMAND" "$?" >&2' ERR

series=("$@")
[ ${#series[@]} -gt 0 ] || series=(host 6.1 6.12)
for s in "${series[@]}"; do
	[[ $s == host || $s =~ ^[0-9]+\.[0-9]+$ ]] || die "unknown kernel series '$s' (host, 6.1, 6.12, ...)"
done
mkdir -p "$cache/debs" "$kernels" "$results"

# One run at a time: runs share the cache and the results directory.
exec 9>"$cache/.lock"
flock -n 9 || die "another test/vm/run.sh, or a process a killed one left, holds $cache/.lock"

work=$(mktemp -d)
tmpdirs=("$work")
trap 'rm -rf "${tmpdirs[@]}"' EXIT
# Leftovers of runs that were killed: temporary unpack and download
# directories, and the *.tmp directories of older versions of this script.
rm -rf "$kernels"/.tmp.* "$kernels"/*.tmp "$cache"/debs/.tmp.*

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
	-o "Dir::State::Lists=$aptdir/lists" -o "Dir::Cache=$aptdir" -o Debug::NoLocking=1
	-o Acquire::Retries=1 -o Acquire::http::Timeout=30)
apt_tried=0
# apt_update refreshes the private package lists once a day. Failing (no
# network) is not fatal: the lists and kernels already cached are used,
# and fetch_kernel fails only when the kernel it needs is in neither.
apt_update() {
	[ $apt_tried -eq 0 ] || return 0
	apt_tried=1
	mkdir -p "$aptdir/lists/partial" "$aptdir/archives/partial"
	cat > "$aptdir/sources.list" <<-SRC
	deb http://deb.debian.org/debian bookworm main
	deb http://deb.debian.org/debian bookworm-updates main
	deb http://deb.debian.org/debian-security bookworm-security main
	deb http://deb.debian.org/debian bookworm-backports main
	SRC
	# Once a day is enough to find the newest kernel of each series.
	if [ -n "$(find "$aptdir/updated" -mtime -1 2>/dev/null)" ]; then
		return 0
	fi
	log "apt update (private lists in $aptdir)"
	if timeout 300 apt-get "${apt_opts[@]}" update -q >"$aptdir/update.log" 2>&1 &&
		! grep -Eq '^(E:|W: (Failed to fetch|Some index files failed))' "$aptdir/update.log"; then
		touch "$aptdir/updated"
	else
		warn "apt update failed (offline?); using the package lists and kernels already in $cache (see $aptdir/update.log)"
	fi
}
series_pattern() { # series -> regexp of its linux-image-*-cloud-amd64 package names
	case $1 in
	6.1) echo '^linux-image-6\.1\.0-[0-9]+-cloud-amd64$' ;;
	*) echo "^linux-image-${1//./\\.}\\.[0-9]+\\+deb12-cloud-amd64\$" ;;
	esac
}
newest_package() { # series -> newest package of it in the apt lists, or nothing
	local out
	if ! out=$(apt-cache "${apt_opts[@]}" search --names-only "$(series_pattern "$1")" 2>&1); then
		warn "apt-cache search for $1 failed: $out"
		return 0
	fi
	awk '{ print $1 }' <<<"$out" | sort -V | tail -n 1
}
complete_kernel() { # package -> true when $kernels/PACKAGE is complete and has today's module list
	local dir=$kernels/$1
	[ -f "$dir/vmlinuz" ] && [ -f "$dir/modules/order" ] && [ "$(cat "$dir/complete" 2>/dev/null)" = "${modules[*]}" ]
}
newest_cached() { # series -> newest complete kernel of it in the cache, or nothing
	local pattern d
	pattern=$(series_pattern "$1")
	for d in "$kernels"/*/; do
		d=$(basename "$d")
		if [[ $d =~ $pattern ]] && complete_kernel "$d"; then echo "$d"; fi
	done | sort -V | tail -n 1
}
download_deb() { # package -> sets deb to its .deb in the cache, downloading it once; false on failure
	local pkg=$1 tmp f
	deb=""
	for f in "$cache/debs/${pkg}"_*.deb; do
		if [ -f "$f" ] && dpkg-deb --info "$f" >/dev/null 2>&1; then deb=$f; fi
	done
	[ -z "$deb" ] || return 0
	rm -f "$cache/debs/${pkg}"_*.deb # damaged
	log "download $pkg"
	tmp=$(mktemp -d "$cache/debs/.tmp.XXXXXX") || return 1
	tmpdirs+=("$tmp")
	if ! (cd "$tmp" && timeout 600 apt-get "${apt_opts[@]}" download "$pkg") >"$tmp/log" 2>&1; then
		warn "download of $pkg failed: $(tail -n 3 "$tmp/log")"
		return 1
	fi
	f=$(find "$tmp" -maxdepth 1 -name "${pkg}_*.deb" -print -quit)
	if [ -z "$f" ] || ! dpkg-deb --info "$f" >/dev/null 2>&1; then
		warn "download of $pkg gave no valid .deb: $(ls "$tmp")"
		return 1
	fi
	mv "$f" "$cache/debs/" || return 1
	deb=$cache/debs/$(basename "$f")
	rm -rf "$tmp"
}
modinfo_field() { # module file, field -> value (the .modinfo strings; no modinfo(8) needed)
	local cat=(cat)
	case $1 in
	*.xz) cat=(xz -dc) ;;
	*.zst) cat=(zstd -dqc) ;;
	esac
	"${cat[@]}" "$1" | tr '\0' '\n' | awk -v k="$2=" 'index($0, k) == 1 && !done { print substr($0, length(k) + 1); done = 1 }'
}
unpack_kernel() { # package, deb -> complete $kernels/PACKAGE (or exit)
	local pkg=$1 deb=$2 rel=${1#linux-image-} tmp mdir f n m vermagic
	local -A path=() builtin=() visiting=()
	local order=()
	log "unpack $pkg"
	tmp=$(mktemp -d "$kernels/.tmp.XXXXXX") || die "cannot create a directory in $kernels"
	tmpdirs+=("$tmp")
	if ! dpkg-deb -x "$deb" "$tmp/x"; then
		rm -f "$deb"
		die "dpkg-deb -x $deb failed: removed it, the next run downloads it again"
	fi
	mdir=$tmp/x/lib/modules/$rel
	[ -f "$tmp/x/boot/vmlinuz-$rel" ] || die "$deb has no boot/vmlinuz-$rel"
	[ -d "$mdir" ] || die "$deb has no lib/modules/$rel"
	mkdir -p "$tmp/k/modules"
	cp "$tmp/x/boot/vmlinuz-$rel" "$tmp/k/vmlinuz" || die "copy vmlinuz-$rel failed"
	# Module names use _ where file names may use -.
	while IFS= read -r -d '' f; do
		n=$(basename "$f")
		n=${n%%.ko*}
		path[${n//-/_}]=$f
	done < <(find "$mdir" -name '*.ko*' -print0)
	[ ${#path[@]} -gt 0 ] || die "no modules found under lib/modules/$rel of $deb"
	if [ -f "$mdir/modules.builtin" ]; then
		while IFS= read -r f; do
			n=$(basename "$f")
			n=${n%%.ko*}
			builtin[${n//-/_}]=1
		done <"$mdir/modules.builtin"
	fi
	# add_module: the module's dependencies (its modinfo depends=), then the module.
	add_module() {
		local n=${1//-/_} deps d
		[[ " ${order[*]} " != *" $n "* ]] || return 0
		if [ -z "${path[$n]:-}" ]; then
			[ -n "${builtin[$n]:-}" ] || die "module $n: neither a module nor built into $rel"
			return 0
		fi
		[ -z "${visiting[$n]:-}" ] || die "module $n: dependency cycle"
		visiting[$n]=1
		deps=$(modinfo_field "${path[$n]}" depends) || die "read the modinfo of ${path[$n]} failed"
		for d in ${deps//,/ }; do add_module "$d"; done
		order+=("$n")
	}
	for m in "${modules[@]}"; do add_module "$m"; done
	for m in "${order[@]}"; do
		f=${path[$m]}
		case $f in
		*.xz) xz -dc "$f" >"$tmp/k/modules/$m.ko" ;;
		*.zst) zstd -dqc "$f" >"$tmp/k/modules/$m.ko" ;;
		*) cp "$f" "$tmp/k/modules/$m.ko" ;;
		esac || die "decompress $f failed"
		vermagic=$(modinfo_field "$tmp/k/modules/$m.ko" vermagic)
		[[ $vermagic == "$rel "* ]] || die "$m.ko: vermagic '$vermagic' is not for $rel"
	done
	printf '%s\n' "${order[@]}" >"$tmp/k/modules/order"
	# Written last: a directory with this file is complete.
	echo "${modules[*]}" >"$tmp/k/complete"
	rm -rf "${kernels:?}/$pkg" || die "cannot remove the stale $kernels/$pkg"
	mv -T "$tmp/k" "$kernels/$pkg" || die "cannot move the unpacked kernel to $kernels/$pkg"
	rm -rf "$tmp"
	log "$pkg: modules ${order[*]}"
}
fetch_kernel() { # series -> sets kdir to a complete kernel directory (vmlinuz, modules/), or exits
	local pkg cached
	pkg=$(newest_package "$1")
	cached=$(newest_cached "$1")
	if [ -z "$pkg" ]; then
		[ -n "$cached" ] || die "no $1 kernel: none in the apt lists of $aptdir (offline?) and none cached in $kernels"
		warn "no $1 kernel in the apt lists; using the cached $cached"
		kdir=$kernels/$cached
		return 0
	fi
	kdir=$kernels/$pkg
	complete_kernel "$pkg" && return 0
	if ! download_deb "$pkg"; then
		[ -n "$cached" ] || die "no $1 kernel: the download of $pkg failed and none is cached in $kernels"
		warn "using the cached $cached instead of the newest $1 kernel, $pkg"
		kdir=$kernels/$cached
		return 0
	fi
	unpack_kernel "$pkg" "$deb"
}

# --- initramfs: busybox, the kernel's modules, the binaries, init
make_initramfs() { # kernel dir -> sets initrd to the initramfs path, or exits
	local k=$1 ir
	ir=$work/initramfs-$(basename "$1")
	rm -rf "$ir" && mkdir -p "$ir"/{bin,dev,proc,sys,run,tmp,lib/modules}
	cp /bin/busybox "$ir/bin/busybox" || die "no /bin/busybox (make deps-vm)"
	cp "$k"/modules/*.ko "$k/modules/order" "$ir/lib/modules/" || die "copy the modules of $k failed"
	cp "$work"/bin/* "$ir/bin/"
	cp "$root/test/vm/init.sh" "$ir/init" && chmod +x "$ir/init"
	(cd "$ir" && find . | cpio -o -H newc --quiet | gzip -1) >"$ir.cpio.gz" || die "cpio of $ir failed"
	initrd=$ir.cpio.gz
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
	rm -rf "$out" && mkdir -p "$out"
	start=$(date +%s)
	if [ "$s" = host ]; then
		log "host $(uname -r): suite natively"
		rc=0
		(cd /tmp && TCPSCOPE_BINDIR=$work/bin TCPSCOPE_E2E=1 "$work/bin/kernel.test" -test.v -test.count=1 ${TEST_ARGS:-}) >"$out/log" 2>&1 || rc=$?
		"$work/bin/tcpscope" version --features >"$out/features" 2>&1 || true
		uname -r >"$out/kernel"
	else
		apt_update
		fetch_kernel "$s"
		make_initramfs "$kdir"
		log "boot $(basename "$kdir") under qemu (TCG)"
		rc=0
		boot "$kdir" "$initrd" "$out/log" || rc=$?
		if [ $rc -eq 2 ]; then
			log "no result marker: infrastructure failure, retrying once"
			mv "$out/log" "$out/log.first"
			rc=0
			boot "$kdir" "$initrd" "$out/log" || rc=$?
		fi
		sed -n '/TCPSCOPE-FEATURES-BEGIN/,/TCPSCOPE-FEATURES-END/p' "$out/log" | sed '1d;$d' | tr -d '\r' >"$out/features"
		{ grep -ao 'TCPSCOPE-KERNEL [^[:space:]]*' "$out/log" || true; } | head -n 1 | cut -d' ' -f2 >"$out/kernel"
		if grep -a 'TCPSCOPE-INSMOD-FAILED' "$out/log" >&2; then
			warn "$s: modules failed to load (above); log: $out/log"
		fi
	fi
	secs=$(($(date +%s) - start))
	case $rc in
	0) log "$s: PASS (${secs}s)"; echo pass >"$out/result" ;;
	2) log "$s: NO RESULT twice (infrastructure, ${secs}s); logs: $out/log.first, $out/log"; echo infra >"$out/result"; status=1 ;;
	*) log "$s: FAIL (${secs}s); log: $out/log"; echo fail >"$out/result"; status=1
	   grep -aE -- '--- FAIL|^\s+\S+_test\.go:[0-9]+:' "$out/log" | head -n 20 >&2 || true ;;
	esac
done

if [ $status -eq 0 ] && [ ${#series[@]} -eq 3 ]; then
	"$root/test/vm/features-table.sh" "$results" host 6.1 6.12 >"$root/docs/kernels.md"
	log "wrote docs/kernels.md"
fi
exit $status
