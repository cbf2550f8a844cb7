#!/usr/bin/env bash
# Serve web/dist on 127.0.0.1, open it in Debian's headless Chromium (WebGPU flags on; the
# CPU fallback must work without them), wait for the gallery, check the console, save
# web/dist/screenshot.png. Exits non-zero on any failure. Usage: bash web/test.sh
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
port=$(( 20000 + RANDOM % 20000 ))
python3 -m http.server "$port" --bind 127.0.0.1 --directory web/dist >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/index.html" && break; sleep 0.1; done
PLAYWRIGHT_CORE="$PWD/$tools/node_modules/playwright-core" node web/test.js "http://127.0.0.1:$port/index.html" web/dist/screenshot.png
# the Fashion-MNIST models (UNets) in the browser: an image gallery
PLAYWRIGHT_CORE="$PWD/$tools/node_modules/playwright-core" node web/test.js "http://127.0.0.1:$port/index.html?data=fashion-mnist" web/dist/screenshot-fashion-mnist.png
