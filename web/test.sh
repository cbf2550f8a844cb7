#!/usr/bin/env bash
# Check the .wasm's size budget; serve web/dist on 127.0.0.1 and open it in Debian's headless
# Chromium (WebGPU flags on; the CPU fallback must work without them): the 2-D gallery, the
# Fashion-MNIST gallery (1-step rows before the teacher's row), and a copy with a truncated
# model file (the page must name it). Waits for each gallery, checks the console, saves
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
# the size budget of the .wasm (code only: the models are separate files); the goal is
# 8 MB raw, 3 MB gzip (docs/web.md), the budget what the build meets today plus a margin
raw_budget=${TRACT_WASM_BUDGET:-25500000}
gz_budget=${TRACT_WASM_GZ_BUDGET:-5700000}
wasm=web/dist/tract_studio_bg.wasm
raw=$(stat -c %s $wasm); gz=$(gzip -9 -c $wasm | wc -c)
echo "wasm: $raw bytes raw (budget $raw_budget), $gz bytes gzip -9 (budget $gz_budget)"
if [ "$raw" -gt "$raw_budget" ] || [ "$gz" -gt "$gz_budget" ]; then
  echo "FAILED: the .wasm is over its size budget"; exit 1
fi
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
node web/test.js "$base/index.html" web/dist/screenshot.png
# the Fashion-MNIST models (UNets) in the browser: an image gallery, 1-step rows first
TRACT_EXPECT_PROGRESSIVE=1 TRACT_PROGRESS_SHOT=web/dist/screenshot-fashion-mnist-progress.png \
  node web/test.js "$base/index.html?data=fashion-mnist" web/dist/screenshot-fashion-mnist.png
# a truncated model file: the page names it and draws the gallery of the others; meanwhile
# the tab is hidden and shown again: the page says so and finishes
cp -r web/dist/. "$broken/"
bad=fashion-mnist-tract-2step.safetensors
head -c 300000 "web/dist/$bad" > "$broken/$bad"
serve "$broken"
TRACT_EXPECT_FILE_ERROR=$bad TRACT_HIDE_TAB=1 node web/test.js "$base/index.html?data=fashion-mnist" web/dist/screenshot-truncated.png
