#!/usr/bin/env bash
# Installs the Go tools the tests use, with `go install`, into $LIFECYCLE_CACHE/bin
# (~/.cache/lifecycle/bin): grpcurl (the health check through reflection, as operators
# call it) and buf (lint and breaking-change checks of proto/). Pinned versions;
# skipped when already installed. Called by install-deps.sh.
set -euo pipefail
LIFECYCLE_CACHE=${LIFECYCLE_CACHE:-$HOME/.cache/lifecycle}
bin="$LIFECYCLE_CACHE/bin"
mkdir -p "$bin"

GRPCURL_VERSION=v1.9.4
BUF_VERSION=v1.75.0

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
echo "install-tools: grpcurl $GRPCURL_VERSION, buf $("$bin/buf" --version) in $bin"
