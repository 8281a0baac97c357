#!/usr/bin/env bash
# Installs every Debian package Lifecycle needs to build, run the local Kafka
# broker and run the tests. Idempotent: packages already present are skipped.
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config ccache git
  # libraries
  librdkafka-dev librocksdb-dev
  libprotobuf-dev protobuf-compiler
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc
  libspdlog-dev libfmt-dev libabsl-dev
  libcli11-dev libtomlplusplus-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libssl-dev zlib1g-dev libjemalloc-dev
  # the local broker: a Java 17 runtime and Maven to fetch the Kafka jars
  openjdk-17-jre-headless maven
  # used by scripts
  curl kcat procps python3 openssl
  # /metrics is checked with promtool (tests)
  prometheus
  # the dashboard: cpp-httplib serves it, headless Chromium tests it (WebDriver), a CJK font
  # draws its Chinese; npm (install-tools.sh) fetches ECharts
  libcpp-httplib-dev chromium chromium-driver python3-selenium fonts-wqy-microhei
  # fuzzing (tests/fuzz/fuzz.sh): clang with libFuzzer and the sanitizer runtimes
  clang-14 libclang-rt-14-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
  bash "$here/install-tools.sh"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

echo "install-deps: installing ${#missing[@]} package(s): ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
bash "$here/install-tools.sh"
echo "install-deps: done"
