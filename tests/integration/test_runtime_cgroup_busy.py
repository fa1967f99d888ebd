# SPDX-License-Identifier: Apache-2.0
"""linux.cgroupsPath naming a cgroup that already holds processes (not a
container's own: a service's, another container's) is refused at create,
as runc refuses a non-empty cgroup: the VM's limits are never written on
it and nothing of the run is left."""
import json
import subprocess
import uuid

from test_runtime import world  # noqa: F401 (fixture)
from test_runtime_rtresources import V2, cgroup_dirs, memory_limit, procs


def test_a_cgroup_with_processes_is_refused(world):
    b = world.bundle(["/bin/sh", "-c", "echo must not run"])
    cfg = json.loads((b / "config.json").read_text())
    cgpath = f"/ctrjtest{uuid.uuid4().hex[:8]}/busy"
    cfg["linux"]["cgroupsPath"] = cgpath
    (b / "config.json").write_text(json.dumps(cfg))
    dirs = cgroup_dirs(cgpath)
    for d in dirs.values():
        d.mkdir(parents=True)
    before = memory_limit(dirs)
    sleeper = subprocess.Popen(["sleep", "300"])
    try:
        for d in dirs.values():
            (d / "cgroup.procs").write_text(str(sleeper.pid))
        out = world.tmp / "create.out"
        with open(out, "wb") as o:  # the shim's pipe: the supervisor keeps it
            create = subprocess.run(world.rt() + ["create", "--bundle", str(b), "cb"],
                                    env=world.env, stdout=o, stderr=o, timeout=300)
        if create.returncode == 0:
            subprocess.run(world.rt() + ["delete", "--force", "cb"], env=world.env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
        assert create.returncode != 0, "a busy cgroup was joined"
        assert b"processes" in out.read_bytes() + world.log.read_bytes()
        assert memory_limit(dirs) == before  # no limit written on it
        for d in dirs.values():
            assert procs(d) == [sleeper.pid], d  # nothing of ours joined, nothing killed
        assert not [p for p in world.run_dir.glob("*") if not p.name.startswith(".")]
    finally:
        sleeper.kill()
        sleeper.wait()
        for d in dirs.values():
            d.rmdir()
            d.parent.rmdir()
    assert V2 or len(dirs) == 3
