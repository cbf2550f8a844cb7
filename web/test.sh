#!/usr/bin/env bash
# Check the two .wasm builds' size budgets; serve web/dist on 127.0.0.1 and open it in Debian's headless
# Chromium (WebGPU flags on; the CPU fallback must work without them): the 2-D gallery, the
# Fashion-MNIST gallery (1-step rows before the teacher's row), the diffusers teacher's, the emoji
# (colour) set's, and a copy with a truncated model file (the page must name it). Waits for each gallery, checks the console, saves
# web/dist/screenshot*.png. Exits non-zero on any failure. Usage: bash web/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f web/dist/index.html ] || bash web/build.sh
if ! command -v chromium >/dev/null; then
  [ "$(id -u)" = 0 ] || { echo "chromium missing (apt-get install chromium)"; exit 1; }
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
tools=web/.tools
if [ ! -d "$tools/node_modules/playwright-core" ]; then
  mkdir -p "$tools" && (cd "$tools" && npm install --silent --no-audit --no-fund playwright-core@1 >/dev/null)
fi
# the size budgets of the two .wasm builds (code only: the models are separate files). The goal
# is 8 MB raw, 3 MB gzip (docs/web.md): the CPU-only module, which every browser without a
# hardware WebGPU adapter loads, must meet it; the WebGPU one (CubeCL, wgpu, naga inside) has
# the budget of what it is today plus a margin.
check_size() { # FILE RAW_BUDGET GZIP_BUDGET
  local raw gz
  raw=$(stat -c %s "$1"); gz=$(gzip -9 -c "$1" | wc -c)
  echo "$(basename "$1"): $raw bytes raw (budget $2), $gz bytes gzip -9 (budget $3)"
  if [ "$raw" -gt "$2" ] || [ "$gz" -gt "$3" ]; then
    echo "FAILED: $(basename "$1") is over its size budget"; exit 1
  fi
}
check_size web/dist/tract_studio_bg.wasm "${TRACT_WASM_BUDGET:-25500000}" "${TRACT_WASM_GZ_BUDGET:-5700000}"
check_size web/dist/tract_studio_cpu_bg.wasm "${TRACT_WASM_CPU_BUDGET:-8000000}" "${TRACT_WASM_CPU_GZ_BUDGET:-3000000}"
serve() { # DIR -> a URL base on 127.0.0.1; the server ends with this script
  local port=$(( 20000 + RANDOM % 20000 ))
  python3 -m http.server "$port" --bind 127.0.0.1 --directory "$1" >/dev/null 2>&1 &
  servers+=($!)
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/index.html" && break; sleep 0.1; done
  base="http://127.0.0.1:$port"
}
servers=()
broken=$(mktemp -d)
trap 'kill "${servers[@]}" 2>/dev/null || true; rm -rf "$broken"' EXIT
export PLAYWRIGHT_CORE="$PWD/$tools/node_modules/playwright-core"
serve web/dist
# the WebGPU build, asked for by hand (headless Chromium's WebGPU adapter is SwiftShader, a
# software one, so by itself the page loads the CPU-only build): the 2-D gallery
TRACT_EXPECT_MODULE=webgpu node web/test.js "$base/index.html?module=webgpu" web/dist/screenshot.png
# the Fashion-MNIST models (UNets) in the browser: an image gallery, 1-step rows first, on the
# CPU-only build the page picks by itself
TRACT_EXPECT_MODULE=cpu TRACT_EXPECT_PROGRESSIVE=1 TRACT_PROGRESS_SHOT=web/dist/screenshot-fashion-mnist-progress.png \
  node web/test.js "$base/index.html?data=fashion-mnist" web/dist/screenshot-fashion-mnist.png
# the diffusers teacher and its students (?set=diffusers), their own gallery at 32x32
TRACT_EXPECT_MODULE=cpu TRACT_EXPECT_PROGRESSIVE=1 TRACT_EXPECT_MODELS=diffusers:5 \
  node web/test.js "$base/index.html?data=fashion-mnist&set=diffusers" web/dist/screenshot-diffusers.png
# the colour set (?data=emoji: its only set, the diffusers teacher's): 3x32x32 emoji, the first
# 1-step row on screen within 2 s of its model files' arrival (issue #30's goal)
TRACT_EXPECT_MODULE=cpu TRACT_EXPECT_PROGRESSIVE=1 TRACT_EXPECT_MODELS=emoji:5 TRACT_FIRST_ROW_WITHIN=2 \
  node web/test.js "$base/index.html?data=emoji" web/dist/screenshot-emoji.png
# a truncated model file: the page names it and draws the gallery of the others; meanwhile
# the tab is hidden and shown again: the page says so and finishes
cp -r web/dist/. "$broken/"
bad=fashion-mnist-tract-2step.safetensors
head -c 300000 "web/dist/$bad" > "$broken/$bad"
serve "$broken"
TRACT_EXPECT_FILE_ERROR=$bad TRACT_HIDE_TAB=1 node web/test.js "$base/index.html?data=fashion-mnist" web/dist/screenshot-truncated.png
