#!/usr/bin/env bash
# Make sure Debian's chromium is at /usr/bin/chromium for tests/test_explorer_browser.py, as .ci/run needs it.
# Installs it with apt-get when missing (as root, or with password-less sudo). Prints nothing on stdout when
# chromium is there; otherwise prints one line saying why the browser test will be skipped (`make test` shows
# it at the end). Progress goes to stderr. Always exits 0: a missing browser skips one test, it fails none.
CHROMIUM=/usr/bin/chromium
[ -x "$CHROMIUM" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "Debian's chromium is not at $CHROMIUM and apt-get is not available to install it"
  exit 0
fi
SUDO=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    echo "Debian's chromium is not at $CHROMIUM and installing it needs root: sudo apt-get install -y chromium"
    exit 0
  fi
fi
echo "installing Debian's chromium for the browser test (apt-get install chromium) ..." >&2
LOG=$(mktemp)
if ! { "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq chromium; } >"$LOG" 2>&1; then
  echo "apt-get install chromium failed: $(grep -v '^\s*$' "$LOG" | tail -n 1)"
elif [ ! -x "$CHROMIUM" ]; then
  echo "apt-get installed chromium, but there is no $CHROMIUM"
fi
rm -f "$LOG"
exit 0
