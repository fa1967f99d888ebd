"""README's main job, `make demo`: scripts/demo.sh boots the sample
container and shows what the guest printed, its environment included."""
import os
import subprocess

import pytest

from conftest import BINARY, REPO


def test_demo_shows_the_guest_and_its_environment(kernel_ready):
    if BINARY != REPO / "build" / "ctr-jailer":
        pytest.skip("scripts/demo.sh runs build/ctr-jailer; CTRJ_BUILD points elsewhere")
    r = subprocess.run(["bash", str(REPO / "scripts/demo.sh")], capture_output=True, timeout=600,
                       env={**os.environ, "CTR_JAILER_CACHE": str(kernel_ready)})
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr
    assert "Hello from a microVM: ctr-jailer demo (busybox)" in out, out
    # the container's environment reached the guest's process and /var/environment
    assert "GREETING=hello from the container's environment" in out, out
    assert "export GREETING='hello from the container'\\''s environment'" in out, out
