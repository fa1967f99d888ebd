# SPDX-License-Identifier: Apache-2.0
"""Bad input: one clear line on stderr, exit 125, nothing half-created."""
import subprocess

import pytest

from conftest import BINARY, runs


@pytest.fixture
def bad(runner, tmp_path):
    # A private cache (sharing only the kernel), so "nothing half-created"
    # is not confused by other tests building in the shared cache.
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "kernels").symlink_to(runner.cache / "kernels")

    def run(options, args=("/bin/true",), rootfs=None):
        argv = [str(BINARY), "run", "--rootfs", str(rootfs or runner.rootfs), *options, "--",
                *args]
        result = subprocess.run(argv, env=runner.env({"CTR_JAILER_CACHE": str(cache)}),
                                capture_output=True, timeout=60)
        lines = [l for l in result.stderr.decode().splitlines() if not l.startswith(
            "ctr-jailer: the KVM here")]
        assert result.returncode == 125, result.stderr
        assert len(lines) == 1, lines
        assert not runs(runner.run_dir)
        assert not list(cache.rglob("*.tmp"))
        return lines[0]
    return run


def test_missing_rootfs(bad, tmp_path):
    assert "does-not-exist" in bad([], rootfs=tmp_path / "does-not-exist")


def test_rootfs_is_a_file(bad, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    assert "not a directory" in bad([], rootfs=f)


def test_unreadable_kernel(bad, tmp_path):
    assert "kernel" in bad(["--kernel", str(tmp_path / "no-kernel")])


def test_zero_cpus(bad):
    assert "--cpus" in bad(["--cpus", "0"])


def test_tiny_memory(bad):
    assert "--memory" in bad(["--memory", "1"])


def test_unknown_option(bad):
    assert "--frobnicate" in bad(["--frobnicate"])


def test_malformed_env_file(bad, tmp_path):
    f = tmp_path / "env"
    f.write_text("GOOD=1\nthis is not valid\n")
    assert "line 2" in bad(["--env-file", str(f)])


def test_no_command(bad):
    assert "no command" in bad([], args=())
