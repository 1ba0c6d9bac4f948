#!/usr/bin/env bash
# The browser check (tests/test_browser.py) drives Debian's Chromium through Playwright.
# Install it when we are root on a Debian-like machine (CI, Binder-like boxes); otherwise
# say so: the browser test then skips with the same reason.
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Debian's chromium for the browser check..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "Could not install chromium; the browser check will be skipped."
else
    echo "chromium is not installed and we are not root: the browser check will be skipped."
fi
exit 0
