#!/usr/bin/env bash
# Build the browser app into web/dist/: index.html, the .js glue, the .wasm (sampling only:
# no training code, no models inside), manifest.json and the model files it lists (the page
# fetches them). Serving it needs only a static file server.
# Usage: bash web/build.sh   (TRACT_WASM_OPT=1: wasm-opt -Oz, 6 minutes, verified to load and
# run the gallery, 28% smaller raw but no smaller gzipped; TRACT_WEB_PROFILE=web-small)
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
# the WebGPU module at opt-level "s" (its size), the CPU-only one at 3 (its sampling runs in
# WebAssembly: 27% faster); TRACT_WEB_PROFILE sets both
profile=${TRACT_WEB_PROFILE:-web}
cpu_profile=${TRACT_WEB_PROFILE:-web-cpu}
# compiled with wasm's 128-bit SIMD (every current browser has it: Chrome 91, Firefox 89,
# Safari 16.4); TRACT_WASM_SIMD=0 builds without it. Measured (docs/web.md): 11% smaller
# (24.4 vs 27.2 MB raw, 5.47 vs 5.77 MB gzip -9) and the gallery 4% faster.
if [ "${TRACT_WASM_SIMD:-1}" = 1 ]; then
  export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C target-feature=+simd128"
fi
rm -rf web/dist && mkdir -p web/dist
size() { echo "$(stat -c %s "$1") bytes raw, $(gzip -9 -c "$1" | wc -c) bytes gzip -9"; }
# wasm-opt -Oz from npm's binaryen (Debian's 108 breaks wasm-bindgen's externref table), with
# no --enable-* flags: it reads the module's own target-features section (-all would turn on
# features Chromium rejects). The result must compile in Node, else the unoptimised module stays.
wasm_opt() { # FILE
  local wasm=$1 tools=web/.tools opt=web/.tools/node_modules/.bin/wasm-opt
  if [ ! -x "$opt" ]; then
    mkdir -p "$tools"
    (cd "$tools" && npm install --silent --no-audit --no-fund binaryen@132 >/dev/null) || true
  fi
  if [ ! -x "$opt" ]; then
    echo "wasm-opt: keeping the unoptimised module (npm could not install binaryen)"
  elif ! "$opt" -Oz -o "$wasm.opt" "$wasm" 2>web/dist/wasm-opt.log; then
    echo "wasm-opt: keeping the unoptimised module (wasm-opt failed: $(tail -3 web/dist/wasm-opt.log))"
    rm -f "$wasm.opt"
  elif ! node -e 'new WebAssembly.Module(require("fs").readFileSync(process.argv[1]))' "$wasm.opt" 2>web/dist/wasm-opt.log; then
    echo "wasm-opt: keeping the unoptimised module (Node rejects the optimised one: $(grep -m1 Error web/dist/wasm-opt.log))"
    rm -f "$wasm.opt"
  else
    mv "$wasm.opt" "$wasm"
    echo "wasm-opt -Oz ($("$opt" --version)): $(size "$wasm"); compiles in Node"
  fi
  rm -f web/dist/wasm-opt.log
}
# Two builds of the library, both with the `gui` feature and without `train` (Burn without
# autodiff, so no training code ships): tract_studio (WebGPU and the CPU backend) and
# tract_studio_cpu (no `wgpu` feature: the CPU backend only, no CubeCL, wgpu or naga), which
# the page loads where the browser has no hardware WebGPU adapter.
module() { # NAME FEATURES PROFILE
  local profile=$3
  cargo build --lib --target wasm32-unknown-unknown --profile "$profile" --no-default-features --features "$2"
  # each module's JS snippets in a folder of its own: both modules come from one crate, so
  # wasm-bindgen names their snippet folders alike, and their inline snippets are numbered in
  # whatever order each build emits them (the second module's inline0.js overwrote the first's)
  local tmp="web/dist/.tmp-$1"
  rm -rf "$tmp"
  wasm-bindgen --target web --no-typescript --remove-name-section --out-dir "$tmp" --out-name "$1" \
    "$CARGO_TARGET_DIR/wasm32-unknown-unknown/$profile/tract_studio.wasm"
  if [ -d "$tmp/snippets" ]; then
    mkdir -p "web/dist/snippets/$1"
    cp -r "$tmp"/snippets/* "web/dist/snippets/$1/"
    # the import statements only: the imports object keeps the names the .wasm asks for
    sed -i "/^import /s#\./snippets/#./snippets/$1/#" "$tmp/$1.js"
  fi
  mv "$tmp/$1.js" "$tmp/$1_bg.wasm" web/dist/
  rm -rf "$tmp"
  echo "$1 (wasm-bindgen output): $(size "web/dist/$1_bg.wasm")"
  if [ "${TRACT_WASM_OPT:-0}" = 1 ]; then wasm_opt "web/dist/$1_bg.wasm"; fi
}
module tract_studio gui,wgpu "$profile"
module tract_studio_cpu gui "$cpu_profile"
cp web/index.html web/worker.js web/dist/
# the models: files beside the page, listed by the manifest
cp assets/manifest.json web/dist/
for f in $(python3 -c 'import json,sys; print(" ".join(e["path"] for e in json.load(open(sys.argv[1]))))' assets/manifest.json); do
  cp "assets/$f" web/dist/
done
du -sh web/dist/* | sed 's/^/  /'
