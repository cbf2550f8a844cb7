#!/usr/bin/env bash
# The test command: installs what the tests need on a fresh Debian machine (when root),
# then checks formatting, clippy and rustdoc and runs the whole test suite.
# Usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# Mesa warns on every Vulkan start without it
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}

need=()
command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup (https://rustup.rs)" >&2; exit 1; }
[ -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || need+=(mesa-vulkan-drivers)
# grep without -q: with -q it stops reading early, ldconfig gets SIGPIPE and pipefail turns
# an installed library into a missing one
ldconfig -p 2>/dev/null | grep libvulkan.so.1 >/dev/null || need+=(libvulkan1)
# Fashion-MNIST: the image tests and the app's distillation from the shipped sets train on it
ls /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte* >/dev/null 2>&1 || need+=(dataset-fashion-mnist)
# the colour `emoji` data comes from this font (11 MB)
emoji_font=/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf
[ -e "$emoji_font" ] || need+=(fonts-noto-color-emoji)
# data-parallel training over MPI (the `mpi` feature, tests/mpi.rs): Open MPI, and libclang
# for rsmpi's bindgen
command -v mpirun >/dev/null || need+=(openmpi-bin)
command -v mpicc >/dev/null || need+=(libopenmpi-dev)
# (libclang.so or libclang-N.so itself: libclang-cpp, which other packages bring, is not it)
ldconfig -p 2>/dev/null | grep -E 'libclang(-[0-9.]+)?\.so' >/dev/null || need+=(libclang-dev)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${need[*]} (Vulkan on the CPU for the wgpu tests; Fashion-MNIST; the emoji font; MPI)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "note: ${need[*]} missing and not root; wgpu tests will report that no adapter exists" >&2
  fi
fi

# with the font installed, a test that cannot read it fails instead of skipping
if [ -e "$emoji_font" ]; then export TRACT_REQUIRE_EMOJI=1; fi
# with a Vulkan driver present, a missing wgpu adapter is a failure, not a skip
if ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1; then export TRACT_REQUIRE_WGPU=1; fi

# the shell scripts parse (scripts/device-check.sh runs only where a GPU is lent)
for f in scripts/*.sh web/*.sh; do bash -n "$f"; done
if cargo fmt --version >/dev/null 2>&1; then cargo fmt --check; fi

# lints: clippy on every target and rustdoc, warnings are errors; both check the crate
# without code generation (release profile, so the build scripts and proc macros of the
# test build are reused); TRACT_SKIP_LINT=1 skips them
if [ "${TRACT_SKIP_LINT:-0}" != 1 ]; then
  if ! cargo clippy --version >/dev/null 2>&1 && command -v rustup >/dev/null; then
    echo "installing clippy (rustup component add clippy)"
    rustup component add clippy || true
  fi
  if cargo clippy --version >/dev/null 2>&1; then
    cargo clippy --release --all-targets --locked -- -D warnings
  else
    echo "note: cargo clippy is not installed and rustup is missing; clippy skipped" >&2
  fi
  RUSTDOCFLAGS="-D warnings" cargo doc --release --no-deps --locked
fi

cargo test --release --locked "$@"

# data-parallel training over MPI: `mpirun -np 2` against one process, a killed rank,
# resume on 1 and 2 ranks, refusals (tests/mpi.rs). One more build of the crate with the
# `mpi` feature (about 2-3 minutes here); skipped with a message where MPI is missing, and
# with TRACT_SKIP_MPI=1
if [ "${TRACT_SKIP_MPI:-0}" != 1 ]; then
  if command -v mpirun >/dev/null && command -v mpicc >/dev/null; then
    cargo test --release --locked --features mpi --test mpi
  else
    echo "MPI tests skipped: mpirun or libopenmpi-dev missing (apt-get install openmpi-bin libopenmpi-dev libclang-dev)"
  fi
fi

# the browser build, tested in headless Chromium when it is here (installed when root);
# TRACT_SKIP_WEB=1 skips it
if [ "${TRACT_SKIP_WEB:-0}" != 1 ]; then
  if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || true
  fi
  if command -v chromium >/dev/null && command -v node >/dev/null; then
    bash web/build.sh
    TRACT_WEB_WEBGPU=${TRACT_WEB_WEBGPU:-0} bash web/test.sh
  else
    echo "web test skipped: chromium or node missing"
  fi
fi
