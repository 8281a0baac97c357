#!/usr/bin/env bash
# The schema checks the test command runs (ctest: proto_buf_lint, proto_buf_breaking):
#   proto-check.sh lint       buf lint of proto/ (buf.yaml)
#   proto-check.sh breaking   buf breaking against proto/ as of the last tagged release
#                             (without tags: the commit in deploy/local/proto-baseline;
#                             PROTO_BASELINE overrides, e.g. a tag or a branch)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
buf=${BUF:-${LIFECYCLE_CACHE:-$HOME/.cache/lifecycle}/bin/buf}
[ -x "$buf" ] || { echo "proto-check: buf not found at $buf; run deploy/local/install-deps.sh" >&2; exit 1; }
cd "$repo"
case "${1:-}" in
  lint)
    "$buf" lint
    echo "proto-check: buf lint: no findings"
    ;;
  breaking)
    baseline=${PROTO_BASELINE:-$(git describe --tags --abbrev=0 --match 'v*' 2>/dev/null || true)}
    if [ -z "$baseline" ]; then  # a clone without tags: the release commit on record
      baseline=$(grep -v '^#' "$here/proto-baseline" | head -1)
    fi
    if ! git cat-file -e "$baseline^{commit}" 2>/dev/null; then
      echo "proto-check: the baseline $baseline is not in this clone (shallow? try: git fetch --tags)" >&2
      exit 1
    fi
    "$buf" breaking --against ".git#ref=$baseline,subdir=proto"
    echo "proto-check: buf breaking against $baseline: no breaking change"
    ;;
  *) echo "usage: $0 lint|breaking" >&2; exit 2 ;;
esac
