#!/usr/bin/env bash
# Build the browser app into web/dist/ (index.html, .js, .wasm; the shipped models are
# embedded in the .wasm). Serving it needs only a static file server.
# Usage: bash web/build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR_WASM:-${CARGO_TARGET_DIR:-target}-wasm}
rustup target add wasm32-unknown-unknown >/dev/null
want=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  echo "installing wasm-bindgen-cli $want (matches Cargo.lock)"
  cargo install wasm-bindgen-cli --version "$want" --force
fi
profile=${TRACT_WEB_PROFILE:-web}
cargo build --lib --target wasm32-unknown-unknown --profile "$profile"
rm -rf web/dist && mkdir -p web/dist
wasm-bindgen --target web --no-typescript --out-dir web/dist "$CARGO_TARGET_DIR/wasm32-unknown-unknown/$profile/tract_studio.wasm"
# Debian's binaryen 108 breaks wasm-bindgen's externref table (the page fails to load), so
# wasm-opt is opt-in: TRACT_WASM_OPT=1 with a newer wasm-opt on PATH.
if [ "${TRACT_WASM_OPT:-0}" = 1 ] && command -v wasm-opt >/dev/null; then
  wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals \
    -o web/dist/tract_studio_bg.opt.wasm web/dist/tract_studio_bg.wasm && mv web/dist/tract_studio_bg.opt.wasm web/dist/tract_studio_bg.wasm \
    || echo "wasm-opt failed; keeping the unoptimized module"
fi
cp web/index.html web/dist/
cp assets/manifest.json web/dist/
du -sh web/dist/* | sed 's/^/  /'
