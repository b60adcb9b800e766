#!/usr/bin/env bash
# Install Debian's Chromium (/usr/bin/chromium) and a font for the headless browser test of the
# drawing page; Playwright (a pip package) drives it and downloads no browser of its own.
# Skips the install when Chromium is already there; without root (or passwordless sudo) or apt-get it only warns, and
# the browser test then skips locally but fails under CI=true.
set -euo pipefail

browser=${CHROMIUM_PATH:-/usr/bin/chromium}
if [ -x "$browser" ]; then
  echo "install-browser: $("$browser" --version 2>/dev/null) is installed" >&2
  exit 0
fi
as_root=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)  # GitHub's runners: passwordless sudo
fi
if { [ "$(id -u)" -ne 0 ] && [ ${#as_root[@]} -eq 0 ]; } || ! command -v apt-get >/dev/null; then
  echo "install-browser: warning: cannot install Chromium (needs root and apt-get); run as root: apt-get install -y chromium fonts-dejavu-core" >&2
  exit 0
fi

"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium fonts-dejavu-core
/usr/bin/chromium --version
