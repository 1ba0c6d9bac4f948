"""tools/ensure_debian_package.sh (behind tools/ensure_bwrap.sh and tools/ensure_chromium.sh): what
`make test` does about a missing Debian package, without installing anything here."""
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "ensure_debian_package.sh"


def ensure(*args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": path or os.environ["PATH"]}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=60)


def test_a_present_tool_is_left_alone():
    done = ensure("some-package", "the tests", "/nonexistent/tool", "sh")
    assert done.returncode == 0 and done.stdout == "" and done.stderr == ""


def test_without_root_it_says_what_will_be_skipped(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "id").write_text("#!/bin/sh\necho 1000\n")          # not root: never reaches apt-get
    (fake / "id").chmod(0o755)
    done = ensure("bubblewrap", "the sandbox tests", "no-such-tool-xyz", path=f"{fake}:/usr/bin:/bin")
    assert done.returncode == 0
    assert done.stdout.strip() == "bubblewrap is not installed and we are not root: the sandbox tests will be skipped."


def test_wrong_usage_exits_2():
    done = ensure("only-a-package")
    assert done.returncode == 2 and "usage:" in done.stderr


def test_both_wrappers_delegate_and_succeed(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "id").write_text("#!/bin/sh\necho 1000\n")          # never apt-get from a test
    (fake / "id").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:/usr/bin:/bin"}
    for name in ("ensure_bwrap.sh", "ensure_chromium.sh"):
        done = subprocess.run(["bash", "-x", str(ROOT / "tools" / name)], capture_output=True, text=True, env=env,
                              timeout=60)
        assert done.returncode == 0 and "ensure_debian_package.sh" in done.stderr, (name, done.stderr)
