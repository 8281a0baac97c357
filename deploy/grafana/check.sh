#!/usr/bin/env bash
# Checks the dashboard's queries with promtool (ctest: grafana_dashboard_queries): each
# panel target becomes a recording rule, and `promtool check rules` parses them all.
# (That every metric a query names is exported is checked by the metrics test.)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
command -v promtool >/dev/null || { echo "promtool not found; run deploy/local/install-deps.sh" >&2; exit 1; }
rules=$(mktemp /tmp/lifecycle-dashboard-rules.XXXXXX.yml)
trap 'rm -f "$rules"' EXIT
python3 - "$here/lifecycled.json" > "$rules" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print("groups:\n  - name: dashboard\n    rules:")
n = 0
for p in d["panels"]:
    for t in p.get("targets", []):
        n += 1
        expr = t["expr"].replace("$job", ".*")
        print(f"      - record: dashboard:query_{n}\n        expr: {json.dumps(expr)}")
print(f"# {n} queries", file=sys.stderr)
PY
promtool check rules "$rules"
