# SPDX-License-Identifier: Apache-2.0
"""The environment passthrough rule with real VMs: run from a host shell
with --rootfs, the runtime's variables stay on the host unless
--env-passthrough; the guest prints what it got. (The seed's container
mode, no --rootfs, passes everything: tests/unit/test_spec.c and
test_cli_options.py cover the rule itself.)"""


def guest_env(runner, options=()):
    r = runner.run(["sh", "-c", "env; echo ---; cat /var/environment"], options=options,
                   env={"FROM_SHELL": "shell-value-42", "AWS_PROFILE": "mine"})
    assert r.returncode == 0, r.stderr
    return r.stdout.decode()


def test_host_shell_passes_nothing_unless_asked(runner):
    out = guest_env(runner, ["-e", "GIVEN=yes"])
    assert "GIVEN=yes" in out  # negative control: -e still reaches the guest
    assert "FROM_SHELL" not in out and "AWS_PROFILE" not in out
    out = guest_env(runner, ["--env-passthrough"])
    assert out.count("shell-value-42") == 2  # the process and /var/environment
    assert "AWS_PROFILE" in out
    assert "CTR_JAILER_CACHE" not in out  # the runtime's own never passes
