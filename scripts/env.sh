# Sourced by scripts/dev and scripts/test: installs what building Eddy needs when it is missing and
# points cargo at one shared target directory, so the local cluster, the tests and CI reuse one
# build of RocksDB instead of compiling it again.

set -euo pipefail

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/eddy-target}"

need_packages=()
# RocksDB's Rust bindings are generated with bindgen, which loads libclang; its C++ needs a compiler.
if ! ldconfig -p 2>/dev/null | grep -q 'libclang[-.0-9]*\.so' && ! ls /usr/lib/llvm-*/lib/libclang*.so >/dev/null 2>&1; then
  need_packages+=(libclang-dev)
fi
command -v c++ >/dev/null 2>&1 || need_packages+=(g++)
command -v make >/dev/null 2>&1 || need_packages+=(make)
if ((${#need_packages[@]})); then
  echo "eddy: installing build dependencies: ${need_packages[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need_packages[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "eddy: cargo is not installed; install Rust from rustup first" >&2
  exit 1
fi
