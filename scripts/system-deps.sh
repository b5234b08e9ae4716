#!/usr/bin/env bash
# Debian packages the test suite uses: real sound files and a headless browser.
#   sound-theme-freedesktop, sonic-pi-samples, tuxpaint-stamps-default  real labelled sounds
#   chromium                                                            web demo browser test
#   fonts-noto-color-emoji                                              captioned pictures (noto style)
# `system-deps.sh --demo` installs only what `make demo` uses (the sounds and the emoji font, no browser).
set -euo pipefail
PKGS=(sound-theme-freedesktop sonic-pi-samples tuxpaint-stamps-default fonts-noto-color-emoji)
WHO="tests that need them are skipped"
case "${1:-}" in
  --demo) WHO="the demo trains on synthetic sounds instead" ;;
  "") PKGS+=(chromium) ;;
  *) echo "usage: $0 [--demo]" >&2; exit 2 ;;
esac
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "[system-deps] installing ${missing[*]}"
  if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    exit 0
  fi
  echo "[system-deps] could not install ${missing[*]} (offline?): $WHO" >&2
else
  echo "[system-deps] missing Debian packages: ${missing[*]} ($WHO; as root: apt-get install ${missing[*]})" >&2
fi
