#!/usr/bin/env bash
# Run the desktop app under Xvfb (lavapipe renders), visit every panel and save one
# screenshot each to docs/screenshots/. Usage: bash scripts/screenshots.sh [BIN]
set -euo pipefail
cd "$(dirname "$0")/.."
# Mesa warns on every Vulkan start without it
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
BIN=${1:-target/release/tract-studio}
[ -x "$BIN" ] || BIN=${CARGO_TARGET_DIR:-target}/release/tract-studio
command -v xvfb-run >/dev/null || { apt-get update -qq && apt-get install -y -qq xvfb mesa-vulkan-drivers libvulkan1 >/dev/null; }
mkdir -p docs/screenshots
for panel in data teacher schedule distill gallery compare; do
  extra=()
  [ "$panel" = distill ] && extra=(--autostart)
  echo "== $panel"
  timeout 300 xvfb-run -a -s "-screen 0 1400x900x24" "$BIN" app --device cpu --panel "$panel" \
      --screenshot "docs/screenshots/$panel.png" "${extra[@]}" 2>&1 | grep -v XDG_RUNTIME_DIR || true
done
ls -la docs/screenshots
