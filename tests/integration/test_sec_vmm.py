# SPDX-License-Identifier: Apache-2.0
"""What a VMM that the guest took over gains on the host (issue 11, points 7,
9 and 10), tried the way an attacker would:

- the caller's terminal (TIOCSTI): ctr-jailer is started from a
  pseudo-terminal, as from an interactive root shell; a hostile VMM pushes
  a command into that terminal's input through every fd it holds and
  through /dev/tty. Nothing may arrive: the VMM runs in a session of its
  own, with stdin on /dev/null (restored from a boot snapshot: a pipe only
  ctr-jailer wrote to, closed once it said "go") and stdout/stderr on pipes
  ctr-jailer relays;
- its room: the jail's root must be root's and read-only, and nothing in
  it may redirect root: QMP is a socket pair, so a symlink planted where
  the QMP socket used to be (pointing at another socket) gets no
  connection, and the graceful stop still reaches the guest;
- its environment and uid: a --secret taken from the runtime's environment
  must not be in /proc/PID/environ of the VMM, and two VMs run as two uids
  from the configured range, neither able to signal the other.

The hostile VMM is a small program given as --qemu (tests/integration/
fake_vmm.c), run jailed and with --no-jail; the rest is read from the host
(/proc/PID/...) while real jailed QEMUs run.
"""
import os
import re
import signal
import stat
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import (REPO, DecoySocket, OnTerminal, Runner, qemu_processes_for, recorded_ids,
                      runs, timings, wait_for_output)

UID_START, UID_COUNT = 2000000000, 65536  # the default --jail-uid-range
STOP_SCRIPT = ('trap "echo TERM-HANDLED; exit 42" TERM; echo ready; '
               'while :; do sleep 0.1; done')


def in_range(uid):
    return UID_START <= uid < UID_START + UID_COUNT


@pytest.fixture(scope="session")
def fake_vmm(tmp_path_factory):
    out = tmp_path_factory.mktemp("fake-vmm") / "fake-vmm"
    subprocess.run(["gcc", "-O2", "-Wall", "-Werror", "-o", str(out),
                    str(REPO / "tests/integration/fake_vmm.c")], check=True)
    return out


def fake_report(output: bytes):
    """{"tiocsti fd0": "ENOTTY", ..., "env": [names]} from the fake's lines."""
    report = {"env": []}
    for line in output.decode("latin-1").splitlines():
        parts = line.strip().split(" ")
        if parts[0] != "FAKE-VMM" or len(parts) < 2:
            continue
        if parts[1] == "env":
            report["env"].append(parts[2])
        elif parts[1] == "tiocsti":
            report[f"tiocsti {parts[2]}"] = parts[3]
        else:
            report[parts[1]] = parts[2] if len(parts) > 2 else ""
    return report


@pytest.mark.parametrize("jail", [True, False], ids=["jail", "no-jail"])
def test_hostile_vmm_gets_no_terminal_room_or_environment(runner, fake_vmm, jail):
    secret = "s3cr3t-" + os.urandom(6).hex()
    # --console: the fake reports on the console, which is shown only when asked
    options = ["--qemu", str(fake_vmm), "--secret", "token=env:CJ_TEST_SECRET", "--console",
               "--cold-boot"]
    if not jail:
        options.append("--no-jail")
    term = OnTerminal(runner.argv(["/bin/true"], options=options),
                      runner.env({"CJ_TEST_SECRET": secret}))
    try:
        rc = term.wait(timeout=120)
        injected = term.injected()
    finally:
        term.close()
    out = bytes(term.out)
    report = fake_report(out)
    assert "done" in report, out  # the fake ran to its end
    # Nothing waits in the caller's terminal: no command to run after the VM.
    assert injected == b"", f"the VMM typed into the caller's terminal: {injected!r}"
    for via in ("fd0", "fd1", "fd2", "tty"):
        assert report[f"tiocsti {via}"] != "ok", (via, report)
    assert report["session-leader"] == "yes"
    # No environment at all: not the secret, not the runtime's settings.
    assert report["env"] == [], report["env"]
    assert secret.encode() not in out
    # Its stderr comes through ctr-jailer, escapes defused.
    assert b"FAKE-VMM-STDERR ?[2J" in out and b"\x1b[2J" not in out, out
    if jail:
        # The room is root's and read-only: nothing to plant there.
        assert report["room-create"] != "ok", report
    assert rc == 124, out  # the "VM" ended without a status


def vmm_child(ctrj_pid, timeout=30):
    """The VMM ctr-jailer started: its child (QEMU; the jail clones it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                stat_line = (proc / "stat").read_text()
            except OSError:
                continue
            if int(stat_line.rsplit(")", 1)[1].split()[1]) == ctrj_pid:
                return int(proc.name)
        time.sleep(0.1)
    raise AssertionError(f"no VMM under ctr-jailer {ctrj_pid}")


def observe(pid):
    rest = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    status = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        status[k] = v.split()
    root = f"/proc/{pid}/root"
    return {
        "pid": pid,
        "stdio": [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in range(3)],
        "stdin_is_null": os.stat(f"/proc/{pid}/fd/0").st_rdev == os.stat("/dev/null").st_rdev,
        "session": int(rest[3]),
        "environ": Path(f"/proc/{pid}/environ").read_bytes(),
        "uid": int(status["Uid"][0]),
        "gid": int(status["Gid"][0]),
        "root_stat": os.stat(root),
        "root_readonly": bool(os.statvfs(root).f_flag & os.ST_RDONLY),
        "root_names": sorted(os.listdir(root)),
        "run_id": next(line.rsplit("ctrj-", 1)[1]
                       for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
                       if "ctrj-" in line),
    }


def can_signal(uid, gid, pid):
    """Could a process of uid:gid signal pid? (kill -0 as that user)"""
    r = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
                        "kill", "-0", str(pid)], capture_output=True)
    return r.returncode == 0


@pytest.fixture(scope="module")
def two_vms(kernel_ready, busybox_rootfs, tmp_path_factory):
    """Two jailed QEMUs at once: A started from a terminal with a secret in
    the runtime's environment, B plainly. While both run, their VMMs are
    read from the host and a compromised A's move is played: a symlink to a
    decoy socket where A's QMP socket was. Then both are stopped
    gracefully."""
    runner = Runner(kernel_ready, tmp_path_factory.mktemp("sec-vmm") / "run", busybox_rootfs)
    secret = "s3cr3t-" + os.urandom(6).hex()
    workload = ["/bin/sh", "-c", STOP_SCRIPT]
    seen = {"secret": secret.encode()}
    a = OnTerminal(runner.argv(workload, options=["--secret", "token=env:CJ_TEST_SECRET"]),
                   runner.env({"CJ_TEST_SECRET": secret}))
    b = runner.start(workload)
    try:
        with DecoySocket() as decoy:
            a.wait_for(b"ready")
            wait_for_output(b, b"ready")
            seen["terminal"] = a.name
            seen["caller_session"] = a.proc.pid  # it leads the terminal's session
            seen["a"] = observe(vmm_child(a.proc.pid))
            seen["b"] = observe(vmm_child(b.pid))
            run_a = runner.run_dir / seen["a"]["run_id"]
            seen["record_a"] = recorded_ids(run_a)
            seen["a_signals_b"] = can_signal(seen["a"]["uid"], seen["a"]["gid"],
                                             seen["b"]["pid"])
            seen["b_signals_a"] = can_signal(seen["b"]["uid"], seen["b"]["gid"],
                                             seen["a"]["pid"])
            # A compromised A plants a symlink to another socket where its
            # QMP socket is (was): root's graceful stop must not follow it.
            planted = run_a / "root" / ".planted"
            os.symlink(decoy.path, planted)
            os.replace(planted, run_a / "root" / "qmp.sock")
            a.proc.send_signal(signal.SIGTERM)
            seen["a_rc"] = a.wait(timeout=120)
            seen["decoy"] = list(decoy.received)
        seen["a_out"] = bytes(a.out)
        seen["injected"] = a.injected()
        b.send_signal(signal.SIGTERM)
        out, _ = b.communicate(timeout=120)
        seen["b_rc"], seen["b_out"] = b.returncode, out
    finally:
        a.close()
        if b.poll() is None:
            b.kill()
            b.communicate()
    time.sleep(0.5)
    leftovers = runs(runner.run_dir)
    procs = qemu_processes_for(runner.run_dir)
    for pid in procs:
        os.kill(pid, signal.SIGKILL)
    assert not leftovers, f"run directory not cleaned: {leftovers}"
    assert not procs, f"VMM processes left running: {procs}"
    return seen


def test_vmm_has_no_terminal_and_a_session_of_its_own(two_vms):
    a = two_vms["a"]
    assert a["stdin_is_null"] or a["stdio"][0].startswith("pipe:"), a["stdio"]
    for target in a["stdio"]:
        assert target != two_vms["terminal"] and not target.startswith("/dev/pts"), a["stdio"]
    assert a["session"] != two_vms["caller_session"]
    assert a["session"] == a["pid"]  # it leads its own session
    assert two_vms["injected"] == b""


def test_vmm_environment_is_empty(two_vms):
    for vm in ("a", "b"):
        assert two_vms[vm]["environ"] == b"", two_vms[vm]["environ"][:200]
    assert two_vms["secret"] not in two_vms["a"]["environ"]


def test_each_vm_has_a_uid_of_its_own(two_vms):
    a, b = two_vms["a"], two_vms["b"]
    assert a["uid"] != b["uid"] and a["gid"] != b["gid"], (a["uid"], b["uid"])
    for vm in (a, b):
        assert in_range(vm["uid"]) and vm["gid"] == vm["uid"], vm["uid"]
    # recorded in the run directory, which teardown removed (the fixture
    # checked that nothing is left)
    assert two_vms["record_a"] == (a["uid"], a["gid"])
    # neither VMM's user can signal the other VMM
    assert not two_vms["a_signals_b"] and not two_vms["b_signals_a"]


def test_room_is_roots_and_read_only(two_vms):
    a = two_vms["a"]
    st = a["root_stat"]
    assert st.st_uid == 0 and st.st_gid == 0, (st.st_uid, st.st_gid)
    assert not stat.S_IMODE(st.st_mode) & 0o022, oct(st.st_mode)
    assert a["root_readonly"]
    assert "qmp.sock" not in a["root_names"], a["root_names"]


def test_planted_qmp_symlink_does_not_redirect_graceful_stop(two_vms):
    assert two_vms["decoy"] == [], f"graceful stop connected to the decoy: {two_vms['decoy']}"
    # the guest got Ctrl-Alt-Del, the workload its SIGTERM and ran its handler
    assert two_vms["a_rc"] == 42, two_vms["a_out"][-2000:]
    assert b"TERM-HANDLED" in two_vms["a_out"]
    # negative control: B, left alone, stops the same way
    assert two_vms["b_rc"] == 42 and b"TERM-HANDLED" in two_vms["b_out"]



@pytest.fixture(scope="session")
def stubborn_vmm(tmp_path_factory):
    """stubborn_vmm.c, under the two names that pick its behaviour."""
    d = tmp_path_factory.mktemp("stubborn-vmm")
    subprocess.run(["gcc", "-O2", "-Wall", "-Werror", "-pthread", "-o", str(d / "flood-vmm"),
                    str(REPO / "tests/integration/stubborn_vmm.c")], check=True)
    (d / "trickle-vmm").write_bytes((d / "flood-vmm").read_bytes())
    (d / "trickle-vmm").chmod(0o755)
    return d


def read_slowly(stream):
    """A console reader slower than ctr-jailer's console budget (1 MiB/s),
    as a terminal or a loaded log pipeline is: 400 KiB/s."""
    while stream.read1(4096):
        time.sleep(0.01)


def stop_time(runner, vmm, options=()):
    """SIGTERM a run of vmm once it is up, its console read slowly; how long
    until ctr-jailer exits (None: not within 120 s), its exit code and its
    messages (the VMM's stderr, of which only the tail is kept, and its
    own). --console shows the console on stderr (stdout is the workload's),
    so stderr is the slow stream and carries the messages."""
    # --cold-boot: the stand-ins play a QEMU booting a kernel, not restoring
    proc = runner.start(["/bin/true"], options=["--qemu", str(vmm), "--cold-boot", "--console",
                                                *options])
    said = []

    def read_slowly_keeping_messages(stream, tail=b""):
        # as a terminal or a loaded log pipeline is: 400 KiB/s, slower than
        # ctr-jailer's console budget (1 MiB/s)
        while chunk := stream.read1(4096):
            said.extend(re.findall(rb"ctr-jailer: [^\n]*\n", tail + chunk))
            tail = chunk[-200:]
            time.sleep(0.01)

    try:
        seen = b""
        deadline = time.monotonic() + 60
        while b"STUBBORN-VMM up" not in seen:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError(f"the stub never came up: {seen[-2000:]!r}")
            seen = seen[-4096:] + proc.stderr.read1(4096)
        said.extend(re.findall(rb"ctr-jailer: [^\n]*\n", seen))
        readers = [threading.Thread(target=read_slowly_keeping_messages, args=(proc.stderr,),
                                    daemon=True),
                   threading.Thread(target=read_slowly, args=(proc.stdout,), daemon=True)]
        for t in readers:
            t.start()
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            return None, None, said
        elapsed = time.monotonic() - start
        for t in readers:
            t.join(timeout=10)
        return elapsed, proc.returncode, said
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_flooding_vmm_that_ignores_the_stop_is_killed_at_the_deadline(runner, stubborn_vmm):
    """A VMM that takes the graceful stop but never stops, and refills its
    console and stderr pipes as fast as ctr-jailer empties them (its writes
    to a slow stdout give the VMM all the time it needs), is killed once the
    grace (--stop-timeout 1) plus ctr-jailer's 10 s margin is over: exit 137
    and nothing left (the runner fixture checks the run directory and the
    processes)."""
    elapsed, rc, said = stop_time(runner, stubborn_vmm / "flood-vmm", ["--stop-timeout", "1"])
    assert elapsed is not None, f"ctr-jailer did not kill the VMM within 120 s: {said}"
    assert 1 + 10 - 1 < elapsed < 1 + 10 + 15, (elapsed, said)
    assert rc == 128 + signal.SIGKILL, (rc, said)
    assert any(b"did not stop in time" in m for m in said), said
    # QMP was answered in time: the graceful stop itself went through (the
    # trickling VMM below is the one that fails it)
    assert not any(b"graceful stop failed" in m for m in said), said


def test_trickling_qmp_reply_does_not_stall_the_stop(runner, stubborn_vmm):
    """A VMM that answers QMP one byte at a time, never a whole reply: the
    graceful stop gives up after its 3 s and kills the VM, long before the
    grace is over (--stop-timeout 60)."""
    elapsed, rc, said = stop_time(runner, stubborn_vmm / "trickle-vmm", ["--stop-timeout", "60"])
    assert elapsed is not None, f"ctr-jailer did not kill the VMM within 120 s: {said}"
    assert elapsed < 3 + 10, (elapsed, said)
    assert rc == 128 + signal.SIGKILL, (rc, said)
    assert any(b"graceful stop failed" in m for m in said), said


# Issue 12, point 3: a VMM that dies on start shows its own words and
# exits 125 (bad input, or the VM could not be started), not 124 with a
# guess at a kernel panic.
def test_qemu_refusing_the_memory_exits_125_with_its_message(runner, tmp_path):
    # ctr-jailer itself refuses a --memory above the host's (test_bad_input);
    # a real QEMU asked for ~95 TiB behind its back shows its own refusal
    wrapper = tmp_path / "qemu-big"
    wrapper.write_text(f'#!/bin/sh\nexec {shutil.which("qemu-system-x86_64")} "$@" -m 100000000\n')
    wrapper.chmod(0o755)
    r = runner.run(["/bin/true"], options=["--qemu", str(wrapper), "--no-jail"])
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 125, err
    last = err.strip().splitlines()[-1]
    assert "QEMU failed" in last and "(exit status 1)" in last, err
    assert "cannot set up guest memory" in last, err
    assert "kernel panic" not in err


def test_bad_qemu_binary_exits_125_with_its_message(runner, tmp_path):
    fake = tmp_path / "qemu-refuses"
    fake.write_text("#!/bin/sh\nprintf 'qemu-refuses: invalid option \\033[2J\\n' >&2\nexit 1\n")
    fake.chmod(0o755)
    r = runner.run(["/bin/true"], options=["--qemu", str(fake), "--no-jail"])
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 125, err
    last = err.strip().splitlines()[-1]
    # it never got as far as greeting on QMP
    assert "QEMU failed before the guest started (exit status 1)" in last, err
    assert "qemu-refuses: invalid option" in last, err
    assert "\x1b" not in err  # its words, made printable


# Issue 16: the init ends a QEMU VM through isa-debug-exit once its status
# is on disk. The workload (root in its VM) can reach that port too: a VM
# it ends that way before any status was written is a VM lost (124), not
# a QEMU failure and never the workload's own exit code.
def test_guest_ending_qemu_through_the_exit_port_is_a_vm_without_status(runner):
    r = runner.run(["/probe", "--port-exit", "0xf4", "0x31"], options=["--cold-boot"])
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 124, err
    assert "ended without reporting a status" in err, err
    assert "QEMU failed" not in err, err
    # control: another value is what QEMU's own failure looks like to us
    r = runner.run(["/probe", "--port-exit", "0xf4", "0x20"], options=["--cold-boot"])
    assert r.returncode == 125, r.stderr
    assert b"QEMU failed (exit status 65)" in r.stderr, r.stderr
    # and a workload that only exits still gets its own code through the fast exit
    r = runner.run(["/probe", "--exit", "9"], options=["--cold-boot"])
    assert r.returncode == 9, r.stderr


def test_finished_vm_ends_through_the_exit_device(runner):
    # a run that ends normally, cold or restored, ends QEMU through the
    # init's fast exit once its status is on disk (status 99)
    for opts in (["--cold-boot"], []):
        r = runner.run(["/bin/sh", "-c", "exit 5"], options=[*opts, "--timings"])
        assert r.returncode == 5, r.stderr
        assert timings(r.stderr).get("vmm_exit_status") == 99, r.stderr
    # control: a guest rebooted by its workload (no status) ends QEMU
    # through the kernel's reboot, status 0, and is a VM lost
    r = runner.run(["/bin/busybox", "reboot", "-f"], options=["--cold-boot", "--timings"])
    assert r.returncode == 124, r.stderr
    assert timings(r.stderr).get("vmm_exit_status") == 0, r.stderr
