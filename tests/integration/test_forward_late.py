# SPDX-License-Identifier: Apache-2.0
"""A forwarded signal (CJ_SIG_FORWARD: `ctr-jailer kill -s USR1`, or
kill's KILL) that reaches a foreground run after its teardown has nothing
left to signal: it must not kill the runtime before it reports the
workload's status, as the stop signals do not."""
import ctypes
import fcntl
import os
import signal
import subprocess
import time

from conftest import runs

F_SETPIPE_SZ = 1031
FORWARD = signal.SIGRTMIN + 3


def test_forward_after_teardown_does_not_kill_the_runtime(runner, tmp_path):
    out = tmp_path / "out"
    r, w = os.pipe()
    fcntl.fcntl(w, F_SETPIPE_SZ, 4096)
    # nearly full: room for a notice (TCG...), not for the timings, which
    # come after the teardown
    os.write(w, b"x" * (4096 - 200))
    with open(out, "wb") as o:
        proc = subprocess.Popen(runner.argv(["/bin/sh", "-c", "echo ran; exit 3"],
                                            options=["--timings", "--cold-boot"]),
                                env=runner.env(), stdout=o, stderr=w)
    os.close(w)
    try:
        deadline = time.monotonic() + 180
        while b"ran" not in out.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert b"ran" in out.read_bytes()
        # the run ended (its record gone): its timings wait on the full stderr
        while runs(runner.run_dir) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        assert proc.poll() is None, "the runtime was waiting on its stderr"
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.sigqueue(proc.pid, FORWARD, ctypes.c_void_p(signal.SIGUSR1)) == 0
        time.sleep(0.5)
    finally:
        os.set_blocking(r, False)
        while True:
            try:
                if not os.read(r, 65536):
                    break
            except BlockingIOError:
                if proc.poll() is not None:
                    break
                time.sleep(0.05)
        proc.wait(timeout=60)
        os.close(r)
    assert proc.returncode == 3
