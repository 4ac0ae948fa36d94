#!/usr/bin/env bash
# Headless Chromium and its driver for the review page's browser tests (tests/e2e/test_review.py),
# from Debian's packages: chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver).
# Selenium (the test extra) drives them through that driver, never a downloaded one. A second run
# with both installed does nothing.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    echo "browser: $(chromium --version 2>/dev/null || echo chromium), chromedriver already installed"
    exit 0
fi
SUDO=
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
install() { $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }
install || { $SUDO apt-get update -qq && install; }
echo "browser: $(chromium --version 2>/dev/null), $(chromedriver --version | head -1)"
