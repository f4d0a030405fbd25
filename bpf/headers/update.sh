#!/usr/bin/env bash
# Vendors the libbpf headers that bpf/tcpscope.c includes, at a pinned
# libbpf release, so that `make generate` gives the same objects on any
# machine whatever libbpf-dev (if any) the distro ships.
#
#   bpf/headers/update.sh            download the release tarball from GitHub
#   LIBBPF_TARBALL=f.tar.gz update.sh   use a tarball fetched by other means
#   LIBBPF_GIT=/path/to/libbpf update.sh   take the files from a libbpf
#                                        clone at the tag (git archive)
#
# To move to another release: change LIBBPF_VERSION, run with
# LIBBPF_UPDATE_SUMS=1 (prints the new checksums instead of checking them),
# paste them below, review the diff of bpf/headers/bpf/, run
# `make check-generate` and commit the headers with the regenerated objects.
set -euo pipefail

LIBBPF_VERSION=1.7.0
# sha256 of each vendored file at LIBBPF_VERSION.
SUMS='
04575f99655917175eef6f44ecc50c081f4e4bfe9b1242d5ecc82f2a57cb3865  bpf_helpers.h
ebcd44514b37cbd4459b5b637dcb39a43d9adee94496c3afe2ee5219b5c8a3a5  bpf_helper_defs.h
84f497bcc97544189255ded585b11f82442fc4f518cf56f6adc4b9d1575756d7  bpf_tracing.h
ffd0d663cb7f3a5c243c7dfc13313438bb83c73d6646da92ef1e912a8d5d9e35  bpf_core_read.h
64b77c97b089ca06203d0451407844fe93933b4e36e7315a294745fa29d058fb  bpf_endian.h
847f4addbd56e2d5be20c4ea0845e972672fc07b755fadaae5f7abd35d71e349  LICENSE
e1638b9a0c68ca90fad3df1d6b4e430804d2fbdc15e58d02cffddfae38953bbf  LICENSE.BSD-2-Clause
0b9a4febcdee6de55872501d5c1a8f5d8b0d1650cd4d5351995ceb22e889f8ca  LICENSE.LGPL-2.1
'
HEADERS="bpf_helpers.h bpf_helper_defs.h bpf_tracing.h bpf_core_read.h bpf_endian.h"
LICENSES="LICENSE LICENSE.BSD-2-Clause LICENSE.LGPL-2.1"

here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix="libbpf-$LIBBPF_VERSION"
files=""
for h in $HEADERS; do files="$files $prefix/src/$h"; done
for l in $LICENSES; do files="$files $prefix/$l"; done

if [ -n "${LIBBPF_GIT:-}" ]; then
	git -C "$LIBBPF_GIT" archive --format=tar --prefix="$prefix/" "v$LIBBPF_VERSION" |
		tar -x -C "$tmp" $files
else
	tarball=${LIBBPF_TARBALL:-}
	if [ -z "$tarball" ]; then
		tarball="$tmp/libbpf.tar.gz"
		curl -fsSL --retry 3 -o "$tarball" \
			"https://github.com/libbpf/libbpf/archive/refs/tags/v$LIBBPF_VERSION.tar.gz"
	fi
	tar -xzf "$tarball" -C "$tmp" $files
fi

cd "$tmp/$prefix"
mkdir -p flat
for h in $HEADERS; do cp "src/$h" "flat/$h"; done
for l in $LICENSES; do cp "$l" "flat/$l"; done
cd flat
if [ -n "${LIBBPF_UPDATE_SUMS:-}" ]; then
	sha256sum $HEADERS $LICENSES
	exit 0
fi
printf '%s\n' "$SUMS" | sed '/^$/d' | sha256sum --check --quiet --strict

for h in $HEADERS; do cp "$h" "$here/bpf/$h"; done
for l in $LICENSES; do cp "$l" "$here/$l"; done
echo "libbpf v$LIBBPF_VERSION headers in $here/bpf"
