# SPDX-License-Identifier: Apache-2.0
"""`ctr-jailer kill` (KILL, sent as the supervisor's forward signal) of a
run that is making its boot snapshot ends it at once, as a stop signal
does, not once the snapshot is made."""
import signal
import subprocess
import time

from conftest import BINARY
from test_snapshot import runner, snapcache, snapshot_makers  # noqa: F401 (fixtures)


def test_kill_while_the_snapshot_is_made_ends_the_run_at_once(runner):
    opts = ["--memory", "188", "--name", "snapkill"]  # a shape of this test's own
    proc = runner.start(["/bin/true"], options=opts)
    deadline = time.monotonic() + 120
    while not snapshot_makers(runner) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None and snapshot_makers(runner), "the run was making its snapshot"
    k = subprocess.run([str(BINARY), "kill", "snapkill"], env=runner.env(),
                       capture_output=True, timeout=30)
    assert k.returncode == 0, k.stderr
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=180)
    took = time.monotonic() - t0
    assert proc.returncode == 137, err
    assert took < 3, f"the kill waited {took:.1f}s for the snapshot"
    assert not snapshot_makers(runner)
    assert not list((runner.cache / "snapshots").glob("*/vmstate.tmp"))


def test_a_window_size_change_during_setup_does_not_end_the_run(runner):
    """SIGWINCH (a terminal resized) while the run is set up (its snapshot
    being made) is no stop: the workload runs and its code is the run's."""
    opts = ["--memory", "192"]  # a shape of this test's own
    proc = runner.start(["/bin/sh", "-c", "exit 7"], options=opts)
    deadline = time.monotonic() + 120
    while not snapshot_makers(runner) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None and snapshot_makers(runner), "the run was making its snapshot"
    proc.send_signal(signal.SIGWINCH)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 7, err
