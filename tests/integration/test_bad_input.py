# SPDX-License-Identifier: Apache-2.0
"""Bad input: one clear line on stderr, exit 125 (127 for a command the
rootfs does not hold), nothing half-created; all before booting."""
import os
import subprocess

import pytest

from conftest import BINARY, runs

# The smallest --memory the default kernel boots a workload in (host/budget.h).
MIN_MEMORY_MIB = 72


@pytest.fixture
def bad(runner, tmp_path):
    # A private cache (sharing only the kernel), so "nothing half-created"
    # is not confused by other tests building in the shared cache.
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "kernels").symlink_to(runner.cache / "kernels")

    def run(options, args=("/bin/true",), rootfs=None, code=125, user=None):
        argv = [str(BINARY), "run", "--rootfs", str(rootfs or runner.rootfs), *options, "--",
                *args]
        result = subprocess.run(argv, env=runner.env({"CTR_JAILER_CACHE": str(cache)}),
                                capture_output=True, timeout=60, user=user)
        lines = [l for l in result.stderr.decode().splitlines() if not l.startswith(
            "ctr-jailer: the KVM here")]
        assert result.returncode == code, result.stderr
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


def test_not_root(bad):
    line = bad(["--network", "none"], user=65534)
    assert "needs root" in line and "CAP_SYS_ADMIN" in line, line


def test_memory_above_the_host(bad):
    line = bad(["--memory", "100000000"])
    assert "more than this host can give" in line, line


def test_memory_below_the_kernels_minimum(bad):
    line = bad(["--memory", "64"])
    assert "too small" in line and str(MIN_MEMORY_MIB) in line, line


def test_kernel_that_is_not_a_kernel(bad, tmp_path):
    f = tmp_path / "vmlinuz"
    f.write_bytes(b"#!/bin/sh\necho not a kernel\n" * 100)
    assert "is not a Linux kernel" in bad(["--kernel", str(f)])


def default_kernel(runner):
    release = os.readlink(runner.cache / "kernels" / "default")
    tree = runner.cache / "kernels" / release
    return release, tree / "boot" / f"vmlinuz-{release}", tree / "lib" / "modules" / release


def test_modular_kernel_without_modules(bad, runner):
    release, kernel, _ = default_kernel(runner)
    line = bad(["--kernel", str(kernel)])
    assert "--modules" in line and release in line, line


def test_modules_of_another_release(bad, runner, tmp_path):
    release, kernel, _ = default_kernel(runner)
    other = tmp_path / "5.10.0-99-amd64"
    other.mkdir()
    line = bad(["--kernel", str(kernel), "--modules", str(other)])
    assert "does not match" in line and release in line, line


def test_missing_absolute_command(bad):
    line = bad([], args=("/bin/no-such-tool",), code=127)
    assert "/bin/no-such-tool: command not found" in line, line


def test_missing_command_on_the_guests_path(bad):
    line = bad([], args=("no-such-tool", "arg"), code=127)
    assert "no-such-tool: command not found" in line, line


def test_command_symlink_resolves_inside_the_tree(bad, make_rootfs):
    # /bin/host-python points at a file the host has and the tree lacks
    root = make_rootfs()
    (root / "bin" / "host-python").symlink_to("/usr/bin/env")
    assert os.path.exists("/usr/bin/env")
    line = bad([], args=("/bin/host-python",), rootfs=root, code=127)
    assert "command not found" in line, line


def test_command_found_on_the_guests_own_path(bad, make_rootfs, tmp_path):
    # Found in /opt/bin through -e PATH, so the run goes on to the next
    # check (an unbootable --kernel), not to 127.
    root = make_rootfs({"/opt/bin/tool": ("#!/bin/sh\n", 0o755)})
    f = tmp_path / "vmlinuz"
    f.write_text("not a kernel")
    line = bad(["-e", "PATH=/opt/bin:/bin", "--kernel", str(f)], args=("tool",), rootfs=root)
    assert "is not a Linux kernel" in line, line
    line = bad([], args=("tool",), rootfs=root, code=127)
    assert "tool: command not found" in line, line
