#!/usr/bin/env bash
# Fails when docs/kernels.md, as the kernel matrix (`make test-kernels`,
# test/vm/run.sh) just rewrote it, differs from the committed file in what
# it states: kernel series, features, suite results. Only the line with the
# exact kernel releases of the run may differ (CI's host and Debian
# publish new builds of the same series). Also fails when the README's
# "Supported kernels" table has no row for a kernel series of the file.
# On failure it prints the difference: commit the regenerated file.
#   test/vm/check-kernels-doc.sh    (after make test-kernels; .ci/run runs it)
set -euo pipefail
cd "$(dirname "$0")/../.."
doc=docs/kernels.md
releases='^Kernels of the run that wrote this file:'
fail() { printf '== ERROR: %s\n' "$*" >&2; exit 1; }

[ -f "$doc" ] || fail "$doc is missing: run make test-kernels"
committed=$(git show "HEAD:$doc" 2>/dev/null) || fail "$doc is not committed: commit what make test-kernels wrote"
if ! diff <(grep -v "$releases" <<<"$committed") <(grep -v "$releases" "$doc") >/dev/null; then
	git --no-pager diff --no-color -- "$doc" >&2 || true
	fail "$doc is stale: the kernel matrix of this run found other kernel series, features or results than the committed file says (diff above). Commit the file make test-kernels wrote, and update the README's \"Supported kernels\" if a series changed."
fi
grep -q "$releases" "$doc" || fail "$doc has no line of kernel releases: it was not written by test/vm/features-table.sh"

# Kernel series named in the table's header: "| feature | 6.18 (CI host) | 6.1 (Debian, qemu) |".
header=$(grep -m1 '^| feature | [0-9]' "$doc") || fail "$doc has no features table"
missing=()
for s in $(grep -oE '\| [0-9]+\.[0-9]+ ' <<<"$header" | tr -d '| '); do
	grep -qE "^\| ${s//./\\.}( |\$)" README.md || missing+=("$s")
done
[ ${#missing[@]} -eq 0 ] || fail "README.md's \"Supported kernels\" table has no row for kernel series ${missing[*]} of $doc"
echo "== $doc agrees with this run's kernel matrix and with README.md"
