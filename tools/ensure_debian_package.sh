#!/usr/bin/env bash
# Make sure a Debian package that some tests need is installed, for `make test` (CI, Binder-like boxes):
#
#   bash tools/ensure_debian_package.sh PACKAGE "WHAT NEEDS IT" COMMAND_OR_PATH...
#
# Nothing happens when one of COMMAND_OR_PATH is on PATH or is an executable file.  Otherwise, as root
# on a Debian-like machine, `apt-get install PACKAGE`; else (or if that fails) say so: the tests that
# need it skip with the same reason.  Always exits 0: a missing tool means skipped tests, not a failure.
# Used by tools/ensure_bwrap.sh and tools/ensure_chromium.sh.
set -u
if [ $# -lt 3 ]; then
    echo "usage: $0 PACKAGE 'WHAT NEEDS IT' COMMAND_OR_PATH..." >&2
    exit 2
fi
package=$1 purpose=$2
shift 2
for tool in "$@"; do
    if command -v "$tool" >/dev/null 2>&1 || [ -x "$tool" ]; then exit 0; fi
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Debian's $package for $purpose..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null) \
        || echo "Could not install $package; $purpose will be skipped."
else
    echo "$package is not installed and we are not root: $purpose will be skipped."
fi
exit 0
