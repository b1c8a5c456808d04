#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the browser tests (tests/web/), from Debian's packages.
#
#   scripts/browser.sh        # install chromium, chromium-driver and a CJK font if missing
#
# Idempotent: does nothing when both binaries (and the CJK font) are present. Selenium is pointed at
# /usr/bin/chromedriver explicitly, so Selenium Manager never downloads a browser or a driver.
# Progress goes to stderr; the exit code is non-zero when the install fails.
set -euo pipefail

CHROMIUM=${HOTLINE_CHROMIUM:-/usr/bin/chromium}
CHROMEDRIVER=${HOTLINE_CHROMEDRIVER:-/usr/bin/chromedriver}
# A small CJK font, so that the screenshots the tests save show Chinese rather than boxes.
CJK_FONT=/usr/share/fonts/truetype/wqy/wqy-microhei.ttc

if [[ -x $CHROMIUM && -x $CHROMEDRIVER && -e $CJK_FONT ]]; then
  exit 0
fi
if [[ $(id -u) != 0 ]]; then
  echo "browser: chromium/chromedriver missing and not root; run: apt-get install chromium chromium-driver" >&2
  exit 1
fi
echo "browser: installing chromium, chromium-driver and fonts-wqy-microhei with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
# Wait for a concurrent apt/dpkg (e.g. scripts/services.sh installing PostgreSQL) instead of failing.
APT=(apt-get -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { "${APT[@]}" update -qq && "${APT[@]}" install -y -qq --no-install-recommends \
  chromium chromium-driver fonts-wqy-microhei; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "browser: apt-get failed" >&2
  exit 1
fi
if [[ ! -x $CHROMIUM || ! -x $CHROMEDRIVER ]]; then
  echo "browser: $CHROMIUM or $CHROMEDRIVER still missing after the install" >&2
  exit 1
fi
echo "browser: $("$CHROMIUM" --version 2>/dev/null || echo chromium) ready" >&2
