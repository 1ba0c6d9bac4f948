#!/usr/bin/env bash
# The browser check (tests/test_browser.py) and the web edition's figures drive Debian's Chromium.
exec bash "$(dirname "$0")/ensure_debian_package.sh" chromium "the browser check (tests/test_browser.py)" chromium /usr/bin/chromium
