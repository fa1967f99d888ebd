# SPDX-License-Identifier: Apache-2.0
"""`ctr-jailer kill` (KILL, sent as the supervisor's forward signal) of a
run that is making its boot snapshot ends it at once, as a stop signal
does, not once the snapshot is made."""
import signal
import subprocess

from conftest import BINARY
from test_snapshot import ended_at_once, making_snapshot, runner, snapcache  # noqa: F401


def test_kill_while_the_snapshot_is_made_ends_the_run_at_once(runner):
    opts = ["--memory", "188", "--name", "snapkill"]  # a shape of this test's own
    proc = making_snapshot(runner, ["/bin/true"], opts)
    k = subprocess.run([str(BINARY), "kill", "snapkill"], env=runner.env(),
                       capture_output=True, timeout=30)
    assert k.returncode == 0, k.stderr
    ended_at_once(runner, proc, 137)


def test_a_window_size_change_during_setup_does_not_end_the_run(runner):
    """SIGWINCH (a terminal resized) while the run is set up (its snapshot
    being made) is no stop: the workload runs and its code is the run's."""
    opts = ["--memory", "192"]  # a shape of this test's own
    proc = making_snapshot(runner, ["/bin/sh", "-c", "exit 7"], opts)
    proc.send_signal(signal.SIGWINCH)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 7, err
