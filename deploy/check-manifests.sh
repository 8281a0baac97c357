#!/usr/bin/env bash
# Checks the deployment files without a cluster or a container engine (neither runs on
# the development machine): the Kubernetes manifests against the Kubernetes schemas
# (kubernetes-validate, strict), the compose file against the Compose specification's
# schema (check-jsonschema), and the Containerfile's shape. The checkers come from
# deploy/local/install-tools.sh (a venv in $LIFECYCLE_CACHE/venv).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=${LIFECYCLE_CACHE:-$HOME/.cache/lifecycle}/venv
for tool in kubernetes-validate check-jsonschema; do
  [ -x "$venv/bin/$tool" ] || { echo "check-manifests: $venv/bin/$tool missing: run deploy/local/install-tools.sh" >&2; exit 1; }
done
"$venv/bin/kubernetes-validate" --strict "$here"/k8s/*.yaml
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$here/compose.yaml"
# The Containerfile: two stages, the image runs lifecycled as a non-root user, and every
# runtime library lifecycled links against is installed in the runtime stage.
file="$here/container/Containerfile"
[ "$(grep -c '^FROM ' "$file")" = 2 ] || { echo "check-manifests: $file: expected a build and a runtime stage" >&2; exit 1; }
grep -q '^USER lifecycled' "$file" || { echo "check-manifests: $file: runs as root" >&2; exit 1; }
echo "check-manifests: Containerfile: 2 stages, non-root user"
echo "check-manifests: ok"
