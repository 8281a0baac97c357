#!/usr/bin/env bash
# Configures and builds Lifecycle into build/ (Ninja, RelWithDebInfo, ccache when
# present). Incremental: a second run rebuilds only what changed.
#   BUILD_DIR [<repo>/build]  BUILD_TYPE [RelWithDebInfo]  BUILD_JOBS [nproc]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$repo/build}
BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}
BUILD_JOBS=${BUILD_JOBS:-$(nproc)}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S "$repo" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE"
fi
cmake --build "$BUILD_DIR" -j "$BUILD_JOBS"
