#!/usr/bin/env bash
# Installs the tools that are not Debian packages, pinned, skipped when present;
# called by install-deps.sh:
# - with `go install`, into $LIFECYCLE_CACHE/bin (~/.cache/lifecycle/bin): grpcurl (the
#   health check through reflection, as operators call it) and buf (lint and
#   breaking-change checks of proto/);
# - with npm, Apache ECharts for the dashboard, into $LIFECYCLE_CACHE/web/vendor
#   (lifecycled serves it at /vendor/ by default);
# - with pip, into a venv at $LIFECYCLE_CACHE/venv: kubernetes-validate and
#   check-jsonschema, which check deploy/k8s and deploy/compose.yaml against the
#   Kubernetes and Compose schemas (deploy/check-manifests.sh; no cluster or engine).
set -euo pipefail
LIFECYCLE_CACHE=${LIFECYCLE_CACHE:-$HOME/.cache/lifecycle}
bin="$LIFECYCLE_CACHE/bin"
mkdir -p "$bin"

GRPCURL_VERSION=v1.9.4
BUF_VERSION=v1.75.0
ECHARTS_VERSION=6.1.0
KUBERNETES_VALIDATE_VERSION=1.37.0
CHECK_JSONSCHEMA_VERSION=0.39.0

go_cmd=$(command -v go || true)
[ -n "$go_cmd" ] || [ ! -x /usr/local/go/bin/go ] || go_cmd=/usr/local/go/bin/go

install() {  # install NAME MODULE VERSION (a marker file remembers what was installed)
  local name=$1 module=$2 version=$3
  if [ -x "$bin/$name" ] && [ -f "$bin/.$name-$version" ]; then
    return 0
  fi
  if [ -z "$go_cmd" ]; then
    echo "install-tools: Go is needed to install $name ($module@$version); install Go 1.22 or newer" >&2
    exit 1
  fi
  echo "install-tools: go install $module@$version"
  GOBIN="$bin" "$go_cmd" install "$module@$version"
  rm -f "$bin/.$name-"*
  touch "$bin/.$name-$version"
}

install grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl "$GRPCURL_VERSION"
install buf github.com/bufbuild/buf/cmd/buf "$BUF_VERSION"
vendor="$LIFECYCLE_CACHE/web/vendor"
if [ ! -f "$vendor/.echarts-$ECHARTS_VERSION" ]; then
  if ! command -v npm >/dev/null; then  # Node.js's own npm when there is one; else Debian's
    echo "install-tools: installing npm (Debian)"
    DEBIAN_FRONTEND=noninteractive $([ "$(id -u)" -ne 0 ] && echo sudo) apt-get install -y -q --no-install-recommends npm
  fi
  echo "install-tools: npm install echarts@$ECHARTS_VERSION"
  npm install --silent --no-audit --no-fund --prefix "$LIFECYCLE_CACHE/npm" "echarts@$ECHARTS_VERSION"
  mkdir -p "$vendor"
  cp "$LIFECYCLE_CACHE/npm/node_modules/echarts/dist/echarts.min.js" "$vendor/"
  rm -f "$vendor/.echarts-"*
  touch "$vendor/.echarts-$ECHARTS_VERSION"
fi
venv="$LIFECYCLE_CACHE/venv"
pins=".manifests-$KUBERNETES_VALIDATE_VERSION-$CHECK_JSONSCHEMA_VERSION"
if [ ! -f "$venv/$pins" ]; then
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    echo "install-tools: installing python3-venv (Debian)"
    DEBIAN_FRONTEND=noninteractive $([ "$(id -u)" -ne 0 ] && echo sudo) apt-get install -y -q --no-install-recommends python3-venv
    python3 -m venv "$venv"
  fi
  echo "install-tools: pip install kubernetes-validate==$KUBERNETES_VALIDATE_VERSION check-jsonschema==$CHECK_JSONSCHEMA_VERSION"
  "$venv/bin/pip" install -q "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" \
    "check-jsonschema==$CHECK_JSONSCHEMA_VERSION"
  rm -f "$venv/.manifests-"*
  touch "$venv/$pins"
fi
echo "install-tools: grpcurl $GRPCURL_VERSION, buf $("$bin/buf" --version) in $bin; ECharts $ECHARTS_VERSION in $vendor; manifest checkers in $venv"
