#!/usr/bin/env bash
# Debian packages the test suite uses: real sound files and a headless browser.
#   sound-theme-freedesktop, sonic-pi-samples, tuxpaint-stamps-default  real labelled sounds
#   chromium                                                            web demo browser test
#   fonts-noto-color-emoji                                              captioned pictures (noto style)
set -euo pipefail
PKGS=(sound-theme-freedesktop sonic-pi-samples tuxpaint-stamps-default chromium fonts-noto-color-emoji)
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "[system-deps] installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "[system-deps] missing Debian packages: ${missing[*]} (tests that need them are skipped)" >&2
fi
