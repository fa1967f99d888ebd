# SPDX-License-Identifier: Apache-2.0
"""The README's option table, `run --help` and the parser agree (no VM).

The README is the source of truth: every option in its table is in
`run --help` and parses (`run --dry-run` exits 0), every option of
`--help` is in the table, and every seed variable it names reaches the
resolved spec that `--dry-run` prints."""
import json
import re
import subprocess

import pytest

from conftest import BINARY, REPO

# A valid value for each option that takes one.
SAMPLES = {
    "--rootfs": "/tmp", "--image": "oci:/nonexistent", "--entrypoint": "/bin/sh",
    "--max-image-size": "2G", "--cache-max": "20G", "-e": "A=1", "--env": "A=1", "--env-file": "/nonexistent",
    "-u": "1000", "--user": "app", "-w": "/", "--workdir": "/srv", "--hostname": "h",
    "--secret": "token=@/nonexistent", "--cpus": "1", "--memory": "256",
    "--kernel": "/nonexistent", "--modules": "/nonexistent", "--boot-args": "quiet",
    "--extra-boot-args": "quiet", "--rootfs-size": "1G", "--accel": "tcg", "--sig-proxy": "false",
    "--stop-timeout": "3", "-v": "vol:/data", "--volume": "vol:/data",
    "--mount": "type=tmpfs,target=/cache,tmpfs-size=8m", "--tmpfs": "/scratch:size=8m",
    "--volume-size": "1G", "--volumes-dir": "/tmp", "--data": "/tmp", "--data-mount": "/data",
    "--data-size": "1G", "--network": "none", "-p": "8080:80", "--publish": "8080:80",
    "--tap-ip": "10.9.0.1/30", "--host-iface": "eth9", "--dns": "192.0.2.53",
    "--firewall": "nft", "--egress": "deny", "--allow-egress": "192.0.2.0/24",
    "--name": "web-1", "--restart": "on-failure:2", "--health-cmd": "true",
    "--health-interval": "5s", "--health-timeout": "1m", "--health-start-period": "500ms",
    "--health-retries": "2",
    "--vmm": "qemu", "--qemu": "/usr/bin/qemu-system-x86_64", "--firecracker": "/fc",
    "--jailer": "/jailer", "--chroot-base": "/srv/jailer", "--jail-user": "nobody",
    "--jail-uid-range": "3000000000:100", "--cpu-quota": "1.5", "--memory-limit": "1G",
    "--pids-limit": "100", "--cache-dir": "/tmp", "--pull": "never",
    "--platform": "linux/arm64", "--creds": "u:p", "--cert-dir": "/tmp",
    "--insecure-registry": "localhost:5000",
}

# Each seed variable: a value, and where it shows in --dry-run's JSON.
SEED = {
    "CTR_JAILER_INSECURE_REGISTRIES": ("a:5000,b", ["pull", "insecure_registries"], "a:5000,b"),
    "CTR_JAILER_IMAGE": ("oci:/x", ["image"], "oci:/x"),
    "CTR_JAILER_MAX_IMAGE_SIZE": ("2G", ["max_image_size"], 2 << 30),
    "CTR_JAILER_CACHE_MAX": ("20G", ["cache_max"], 20 << 30),
    "VCPU_COUNT": ("3", ["cpus"], 3),
    "MEM_SIZE_MIB": ("300", ["memory_mib"], 300),
    "CTR_JAILER_KERNEL": ("/k", ["kernel"], "/k"),
    "KERNEL_BOOT_ARGS": ("ka", ["boot_args"], "ka"),
    "EXTRA_KERNEL_BOOT_ARGS": ("ea", ["extra_boot_args"], "ea"),
    "ROOTFS_SIZE": ("1G", ["rootfs_size"], 1 << 30),
    "CTR_JAILER_VOLUMES": ("/vols", ["storage", "volumes_dir"], "/vols"),
    "DATA_MOUNT": ("/data", ["storage", "data_mount"], "/data"),
    "DATAFS_SIZE": ("1G", ["storage", "data_size"], 1 << 30),
    "CTR_JAILER_NETWORK": ("none", ["network", "mode"], "none"),
    "PUBLISH": ("8080:80,8443:443", ["network", "published_ports"], 2),
    "TAP_IP": ("10.9.0.1/30", ["network", "tap_ip"], "10.9.0.1/30"),
    "HOST_IFACE": ("eth9", ["network", "host_iface"], "eth9"),
    "CTR_JAILER_FIREWALL": ("nft", ["network", "firewall"], "nft"),
    "CTR_JAILER_EGRESS": ("deny", ["network", "egress"], "deny"),
    "CTR_JAILER_ALLOW_EGRESS": ("10.0.0.0/8,192.0.2.0/24", ["network", "allow_egress"], 2),
    "CTR_JAILER_ALLOW_LINK_LOCAL": ("1", ["network", "allow_link_local"], True),
    "CTR_JAILER_VMM": ("firecracker", ["vmm", "vmm"], "firecracker"),
    "FIRECRACKER_BIN": ("/fc", ["vmm", "firecracker"], "/fc"),
    "JAILER_BIN": ("/j", ["vmm", "jailer"], "/j"),
    "CTR_JAILER_CHROOT_BASE": ("/srv/j", ["vmm", "chroot_base"], "/srv/j"),
    "CTR_JAILER_JAIL_USER": ("nobody", ["vmm", "jail_user"], "nobody"),
    "CTR_JAILER_UID_RANGE": ("3000000000:100", ["vmm", "jail_uid_range"], "3000000000:100"),
    "CTR_JAILER_CPU_QUOTA": ("1.5", ["vmm", "cpu_quota"], 1.5),
    "CTR_JAILER_MEMORY_LIMIT": ("1G", ["vmm", "memory_limit"], 1 << 30),
    "CTR_JAILER_PIDS_LIMIT": ("100", ["vmm", "pids_limit"], 100),
    "CTR_JAILER_CACHE": ("/c", ["cache_dir"], "/c"),
    "CTR_JAILER_RUN_DIR": ("/r", ["run_dir"], "/r"),
}


def readme_table():
    """(options, variables) of each row of the README's `run` option table."""
    text = (REPO / "README.md").read_text()
    start = text.index("| option | environment (seed) | meaning |")
    rows = []
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = re.split(r"(?<!\\)\|", line)[1:-1]
        options = [re.match(r"-[-\w]+", c).group(0)
                   for c in re.findall(r"`([^`]+)`", cells[0])]
        variables = [v.split("=")[0] for v in re.findall(r"`([A-Z_]+(?:=\w+)?)`", cells[1])]
        rows.append((options, variables))
    assert len(rows) > 20
    return rows


README_OPTIONS = sorted({o for opts, _ in readme_table() for o in opts})
README_VARIABLES = sorted({v for _, vs in readme_table() for v in vs})


def run_help():
    r = subprocess.run([BINARY, "run", "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return r.stdout


def dry_run(args, env=None):
    r = subprocess.run([BINARY, "run", "--dry-run", *args, "--", "/bin/true"],
                       capture_output=True, text=True, timeout=10,
                       env={"PATH": "/usr/bin:/bin", **(env or {})})
    assert r.returncode == 0, (args, env, r.stderr)
    return json.loads(r.stdout)


def help_options(text):
    found = set()
    for m in re.finditer(r"^  (-\w)?(?:, )?(--[\w-]+)?", text, re.M):
        found.update(x for x in m.groups() if x)
    return found


@pytest.mark.parametrize("option", README_OPTIONS)
def test_readme_option_in_help_and_parses(option):
    assert option in help_options(run_help()), f"{option} is not in 'run --help'"
    args = [option] + ([SAMPLES[option]] if option in SAMPLES else [])
    dry_run(args)


def test_every_help_option_is_in_the_readme():
    missing = help_options(run_help()) - set(README_OPTIONS) - {"-h", "--help"}
    assert not missing, f"in 'run --help' but not in the README's table: {sorted(missing)}"


@pytest.mark.parametrize("variable", README_VARIABLES)
def test_readme_variable_maps(variable):
    assert variable in run_help(), f"{variable} is not in 'run --help'"
    assert variable in SEED, f"give {variable} a sample in SEED"
    value, path, expected = SEED[variable]
    spec = dry_run([], {variable: value})
    for key in path:
        spec = spec[key]
    assert spec == expected, (variable, spec)


def test_flag_wins_over_variable():
    spec = dry_run(["--cpus", "2"], {"VCPU_COUNT": "3"})
    assert spec["cpus"] == 2


def test_dry_run_keeps_secret_values_out():
    spec = dry_run(["--secret", "token=env:TOKEN"], {"TOKEN": "s3cr3t-value"})
    assert spec["command"]["secrets"] == ["token"]
    assert "s3cr3t-value" not in json.dumps(spec)


@pytest.mark.parametrize("verb", ["run", "kernel", "inspect", "gc", "version", "pull", "images",
                                  "rmi", "tag", "load"])
def test_every_verb_has_help(verb):
    r = subprocess.run([BINARY, verb, "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"usage: ctr-jailer {verb}")


def test_gc_help_does_not_run_gc():
    r = subprocess.run([BINARY, "gc", "--help"], capture_output=True, text=True, timeout=10)
    assert "removed" not in r.stderr


def test_kernel_alone_prints_its_usage():
    r = subprocess.run([BINARY, "kernel"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 125
    assert "usage: ctr-jailer kernel fetch" in r.stderr
    assert "unknown command" not in r.stderr


def test_unknown_verb():
    r = subprocess.run([BINARY, "frobnicate"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 125
    assert r.stderr.strip() == ("ctr-jailer: unknown command 'frobnicate' "
                                "(see 'ctr-jailer --help')")


def test_env_passthrough_rule():
    """The runtime's environment passes only in the seed's container mode
    (no --rootfs, no --image), unless a flag says otherwise."""
    env = {"FROM_SHELL": "x"}
    passed = lambda spec: any(e.startswith("FROM_SHELL=") for e in spec["command"]["env"])
    seed = dry_run([], env)
    assert seed["command"]["env_passthrough"] and passed(seed)
    assert not passed(dry_run(["--no-env-passthrough"], env))
    shell = dry_run(["--rootfs", "/tmp"], env)
    assert not shell["command"]["env_passthrough"] and not passed(shell)
    assert passed(dry_run(["--rootfs", "/tmp", "--env-passthrough"], env))
    # docker's `run IMAGE CMD` from a host shell is no container mode either
    image = dry_run(["docker.io/library/busybox:1.36"], env)
    assert not image["command"]["env_passthrough"] and not passed(image)


def test_health_options_in_dry_run():
    spec = dry_run(["--health-cmd", "curl -f localhost", "--health-interval", "1m30s",
                    "--health-retries", "5"])
    assert spec["health"] == {"test": ["/bin/sh", "-c", "curl -f localhost"],
                              "interval_ms": 90000, "timeout_ms": 30000,
                              "start_period_ms": 0, "retries": 5}
    assert dry_run([])["health"] is None
    assert dry_run(["--no-healthcheck"])["health"] is None
    r = subprocess.run([BINARY, "run", "--dry-run", "--health-cmd", "true", "--no-healthcheck",
                        "--", "/bin/true"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 125 and "conflicts" in r.stderr and r.stderr.count("\n") == 1
