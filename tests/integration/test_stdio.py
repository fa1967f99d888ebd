# SPDX-License-Identifier: Apache-2.0
"""The workload's stdio on the agent channel: stdout and stderr apart end to
end, stdin with -i (and /dev/null without), a terminal with -t, signals
passed on as they came, a detached run's logs by stream. Every check is on
what the workload observed or wrote, with a real VM."""
import os
import signal
import subprocess
import termios
import time

from conftest import BINARY, OnTerminal, wait_for_output
from test_exec import set_winsize


def test_stdout_and_stderr_arrive_apart(runner):
    r = runner.run(["sh", "-c", "echo to-out; echo to-err >&2; echo more-out; exit 7"])
    assert r.returncode == 7, r
    assert r.stdout == b"to-out\nmore-out\n", r
    assert b"to-err\n" in r.stderr and b"to-out" not in r.stderr, r


def test_stdin_is_dev_null_without_i_and_ours_is_not_read(runner):
    r = subprocess.run(runner.argv(["sh", "-c", "cat; echo cat-ended:$?; readlink /proc/self/fd/0"]),
                       env=runner.env(), input=b"must not arrive\n", capture_output=True,
                       timeout=180)
    assert r.returncode == 0, r
    assert r.stdout == b"cat-ended:0\n/dev/null\n", r


def test_stdin_with_i_reaches_the_workload(runner):
    r = subprocess.run(runner.argv(["cat"], options=["-i"]), env=runner.env(), input=b"hi\n",
                       capture_output=True, timeout=180)
    assert r.returncode == 0 and r.stdout == b"hi\n", r


def test_a_mebibyte_through_stdin_and_back_arrives_whole(runner):
    data = os.urandom(1 << 20)
    r = subprocess.run(runner.argv(["sh", "-c", "cat; wc -c >&2 </dev/null"], options=["-i"]),
                       env=runner.env(), input=data, capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) == len(data) and r.stdout == data


def test_wc_counts_what_comes_on_stdin(runner):
    r = subprocess.run(runner.argv(["wc", "-c"], options=["-i"]), env=runner.env(),
                       input=b"x" * 300000, capture_output=True, timeout=300)
    assert r.returncode == 0, r
    assert r.stdout.strip() == b"300000", r


TRAPS = ("trap 'echo got-int; exit 42' INT; trap 'echo got-term; exit 43' TERM;"
         " echo ready; while true; do sleep 1; done")


def signalled(runner, sig, options=()):
    """A workload that says which signal it got and exits with its code:
    (exit code, stdout, stderr) after sig was sent to ctr-jailer."""
    proc = runner.start(["sh", "-c", TRAPS], options=options)
    try:
        wait_for_output(proc, b"ready")
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err


def test_sigint_reaches_the_workload_as_sigint(runner):
    code, out, err = signalled(runner, signal.SIGINT)
    assert code == 42 and b"got-int" in out and b"got-term" not in out, (code, out, err)


def test_sigterm_stays_a_graceful_stop(runner):
    code, out, err = signalled(runner, signal.SIGTERM)
    assert code == 43 and b"got-term" in out, (code, out, err)


def test_sig_proxy_false_stops_the_vm_on_sigint(runner):
    code, out, err = signalled(runner, signal.SIGINT, ["--sig-proxy=false"])
    assert code == 43 and b"got-int" not in out, (code, out, err)  # the stop signal, as before


def test_a_failed_boot_shows_the_console_and_console_shows_it_all(runner):
    r = runner.run(["true"], options=["--user", "nosuchuser"])
    assert r.returncode == 123, r
    assert b"guest console: ctr-jailer-init: user \"nosuchuser\" not found" in r.stderr, r
    r = runner.run(["sh", "-c", "echo hi"])
    assert r.returncode == 0 and r.stdout == b"hi\n" and b"guest console" not in r.stderr, r
    # a cold boot: a run restored from a boot snapshot has no kernel boot to show
    r = runner.run(["sh", "-c", "echo hi"], options=["--console", "--cold-boot",
                                                     "--extra-boot-args", "loglevel=7"])
    assert r.returncode == 0 and r.stdout == b"hi\n", r
    assert b"Linux version" in r.stderr, r  # the kernel's own lines, on stderr


def test_it_gives_a_terminal_whose_size_input_and_ctrl_c_reach_the_guest(runner):
    term = OnTerminal(runner.argv(["sh"], options=["-it"]), runner.env())
    try:
        set_winsize(term.master, 33, 111)
        os.write(term.master, b"tty; stty size; echo mark-$((40+2))\r")
        term.wait_for(b"mark-42")
        assert b"/dev/pts/" in term.out, bytes(term.out)
        assert b"33 111" in term.out, bytes(term.out)
        # Ctrl-C interrupts a guest sleep; the shell goes on
        os.write(term.master, b"sleep 30\r")
        time.sleep(3)
        os.write(term.master, b"\x03")
        start = time.monotonic()
        os.write(term.master, b"echo alive-$((2+3))\r")
        term.wait_for(b"alive-5", timeout=20)
        assert time.monotonic() - start < 20  # not after the sleep's 30 s
        set_winsize(term.master, 20, 70)
        term.proc.send_signal(signal.SIGWINCH)
        os.write(term.master, b"stty size; echo mark2-$((1+1))\r")
        term.wait_for(b"mark2-2")
        assert b"20 70" in term.out, bytes(term.out)
        os.write(term.master, b"exit 3\r")
        assert term.wait() == 3, bytes(term.out)
    finally:
        term.close()


def test_detached_logs_keep_stdout_and_stderr_apart(runner):
    r = subprocess.run([str(BINARY), "run", "-d", "--name", "streams", "--rootfs",
                        str(runner.rootfs), "--memory", "256", "--cpus", "1", "--network", "none",
                        "--", "sh", "-c", "echo line-out; echo line-err >&2; echo out-2"],
                       env=runner.env(), capture_output=True, timeout=180)
    assert r.returncode == 0, r
    w = subprocess.run([str(BINARY), "wait", "streams"], env=runner.env(), capture_output=True,
                       timeout=180)
    assert w.returncode == 0, w
    logs = subprocess.run([str(BINARY), "logs", "streams"], env=runner.env(),
                          capture_output=True, timeout=60)
    assert logs.returncode == 0, logs
    assert logs.stdout == b"line-out\nout-2\n", logs
    assert b"line-err\n" in logs.stderr and b"line-out" not in logs.stderr, logs
    subprocess.run([str(BINARY), "rm", "streams"], env=runner.env(), check=True, timeout=60)


def test_t_makes_our_terminal_raw_and_restores_it(runner):
    term = OnTerminal(runner.argv(["sh", "-c", "echo in-guest; sleep 4; exit 5"],
                                  options=["-t"]), runner.env())
    try:
        # a cooked terminal, as a shell leaves it (ctr-jailer goes raw only
        # once the VM started, seconds from now)
        attrs = termios.tcgetattr(term.slave)
        attrs[3] |= termios.ICANON | termios.ECHO | termios.ISIG
        termios.tcsetattr(term.slave, termios.TCSANOW, attrs)
        term.wait_for(b"in-guest")
        during = termios.tcgetattr(term.slave)[3]
        assert not during & (termios.ICANON | termios.ECHO | termios.ISIG)
        assert term.wait() == 5, bytes(term.out)
        after = termios.tcgetattr(term.slave)[3]
        assert after & termios.ICANON and after & termios.ECHO and after & termios.ISIG
    finally:
        term.close()


def test_a_slow_reader_gets_all_the_output_before_the_vm_ends(runner):
    proc = subprocess.Popen(runner.argv(["sh", "-c", "head -c 2000000 /dev/zero | tr '\\0' x;"
                                         " echo end >&2"]),
                            env=runner.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(15)  # nobody reads: the guest waits under flow control
        assert proc.poll() is None  # the VM did not end with output still held back
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert len(out) == 2000000 and out == b"x" * 2000000
    assert b"end\n" in err
