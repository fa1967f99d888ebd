# SPDX-License-Identifier: Apache-2.0
"""The runtime itself under hostile conditions: a reader that goes away
(SIGPIPE), image data that carries terminal escapes, and gc running
concurrently with starting runs."""
import os
import subprocess

import pytest

from conftest import BINARY, qemu_processes_for, runs


def debugfs_cat(image, path):
    r = subprocess.run(["debugfs", "-R", f"cat {path}", str(image)], capture_output=True)
    return r.stdout


# ---- SIGPIPE ------------------------------------------------------------

# Prints past the point where the reader has gone, then records its end on a
# volume and exits with a status of its own.
CHATTY = ("i=0; while [ $i -lt 200 ]; do echo line $i of output that nobody reads; "
          "i=$((i+1)); done; sleep 2; "
          "i=0; while [ $i -lt 200 ]; do echo more $i; i=$((i+1)); done; "
          "echo reached-the-end > /store/marker; sync; exit 42")


def run_into_head(runner, args, options, with_stderr):
    """`ctr-jailer run ... | head -c 40` (`2>&1 |` with_stderr): returns
    (status, head's output, stderr)."""
    r, w = os.pipe()
    head = subprocess.Popen(["head", "-c", "40"], stdin=r, stdout=subprocess.PIPE)
    os.close(r)
    proc = subprocess.Popen(runner.argv(args, options=options), env=runner.env(),
                            stdout=w, stderr=w if with_stderr else subprocess.PIPE)
    os.close(w)
    _, stderr = proc.communicate(timeout=240)
    out, _ = head.communicate(timeout=10)
    return proc.returncode, out, stderr


@pytest.mark.parametrize("with_stderr", [False, True], ids=["stdout", "stdout+stderr"])
def test_reader_gone_run_continues_to_the_workloads_end(runner, tmp_path, with_stderr):
    vols = tmp_path / "volumes"
    status, out, stderr = run_into_head(
        runner, ["/bin/sh", "-c", CHATTY], ["--volumes-dir", str(vols), "-v", "store:/store"],
        with_stderr)
    assert len(out) == 40
    # not 141 (killed by SIGPIPE): the workload's own status
    assert status == 42, (status, stderr)
    # the workload ran to its end after its reader had gone
    assert debugfs_cat(vols / "store.ext4", "/marker") == b"reached-the-end\n"
    # teardown ran: nothing left (the runner fixture checks it too)
    assert not runs(runner.run_dir)
    assert not qemu_processes_for(runner.run_dir)
