"""Builds that leave no debris (issue 15, item 6): a build killed with SIGKILL anywhere leaves
``--out`` a whole index (the previous one or the new one), and the next build removes what the
dead one left; replacing an index never leaves ``--out`` missing where the system can swap two
directories (and is repaired by the next reader or build where it cannot)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from glint.index import InputError, build_index, load_index
from glint.index.atomicdir import temp_path
from glint.index.storage import IndexWriter, sweep_stale_temps

from testkit import GLINT, clustered, run_glint

N, DIM = 2000, 32
# where GLINT_FAULT_AFTER can kill a build, by replacement path
EXCHANGE_STEPS = ("tmp-created", "files-written", "manifest-written", "exchanged")
TWO_STEP_STEPS = ("tmp-created", "files-written", "manifest-written", "old-moved", "renamed")


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


def _reaped_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _fake_leftover(out: Path, role: str, pid: int, start: int) -> Path:
    """A temporary directory of ``out`` as a build with ``pid``, started at ``start``, names
    it (``role``: tmp or old), holding a file."""
    path = out.parent / f".{out.name}.{role}-{pid}-{start}-{secrets.token_hex(4)}"
    path.mkdir()
    (path / "vectors.npy").write_bytes(b"x" * 100)
    return path


# -- the sweep ---------------------------------------------------------------------------------


def test_a_live_build_keeps_its_temporary_directory(tmp_path: Path, data) -> None:
    """A build's directory is locked while it runs: another build's sweep leaves it."""
    with IndexWriter(tmp_path / "ix") as writer:
        writer.save_array("vectors.npy", data(10, 4))
        assert sweep_stale_temps(tmp_path) == []
        assert sweep_stale_temps(tmp_path, "ix") == []
        assert writer.tmp.is_dir()
    assert _leftovers(tmp_path) == []


def test_the_lock_alone_keeps_a_live_build(tmp_path: Path, data) -> None:
    """Named as if its builder had died (another pid namespace, say), a locked directory
    is still left alone."""
    writer = IndexWriter(tmp_path / "ix")
    writer.tmp = tmp_path / f".ix.tmp-{_reaped_pid()}-99-0123abcd"
    with writer:
        writer.save_array("vectors.npy", data(10, 4))
        assert sweep_stale_temps(tmp_path) == []
        assert writer.tmp.is_dir()
    assert _leftovers(tmp_path) == []


def test_concurrent_overwrites_leave_one_whole_index(tmp_path: Path, data) -> None:
    indices = [build_index(data(40 + i, 8, seed=i), "flat") for i in range(4)]

    def save_three_times(index: Any) -> None:
        for _ in range(3):
            index.save(tmp_path / "ix", overwrite=True)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(save_three_times, indices))
    assert load_index(tmp_path / "ix").count in range(40, 44)
    assert _leftovers(tmp_path) == []


def test_stale_directories_are_swept_and_others_left(tmp_path: Path) -> None:
    out = tmp_path / "ix"
    dead = _reaped_pid()
    stale = [_fake_leftover(out, role, dead, 12345) for role in ("tmp", "tmp", "old")]
    other = _fake_leftover(tmp_path / "other", "tmp", dead, 1)
    legacy = tmp_path / ".ix.tmp-0123456789ab"  # an older glint's, written just now
    legacy.mkdir()
    (out).mkdir()  # the index exists, so the .old-* one is debris, not a backup
    assert sorted(sweep_stale_temps(tmp_path, "ix")) == sorted(stale)
    assert other.is_dir() and legacy.is_dir()
    assert sweep_stale_temps(tmp_path) == [other]
    assert _leftovers(tmp_path) == [legacy.name]


def test_an_older_glints_directory_is_swept_after_an_hour(tmp_path: Path) -> None:
    """Older glints took no lock: their directories are stale once untouched for an hour."""
    legacy = tmp_path / ".ix.tmp-0123456789ab"
    legacy.mkdir()
    (legacy / "vectors.npy").write_bytes(b"x")
    assert sweep_stale_temps(tmp_path) == []
    hours_ago = time.time() - 7200
    for path in (legacy / "vectors.npy", legacy):
        os.utime(path, (hours_ago, hours_ago))
    assert sweep_stale_temps(tmp_path) == [legacy]


def test_a_directory_between_creation_and_lock_is_left(tmp_path: Path) -> None:
    """Unlocked, but its owner (this process, with its start time) is alive: it may be
    about to lock it. The same pid with another start time is a reused pid: stale."""
    out = tmp_path / "ix"
    mine = temp_path(out, "tmp")
    mine.mkdir()
    pid, start = (int(part) for part in mine.name.split("-")[-3:-1])
    if start == 0:
        pytest.skip("no process start times on this system")
    reused = _fake_leftover(out, "tmp", pid, start + 1)
    assert sweep_stale_temps(tmp_path) == [reused]
    assert mine.is_dir()


def test_an_index_moved_aside_is_put_back(tmp_path: Path, data) -> None:
    """The two-step replacement died between its renames: the next reader restores it."""
    out = build_index(data(50, 8), "flat").save(tmp_path / "ix")
    aside = tmp_path / f".ix.old-{_reaped_pid()}-7-0123abcd"
    out.rename(aside)
    assert load_index(out).count == 50  # restored by the reader
    assert _leftovers(tmp_path) == []


def test_overwrite_replaces_only_an_index(tmp_path: Path, data) -> None:
    index = build_index(data(20, 8), "flat")
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "cat.jpg").write_bytes(b"meow")
    with pytest.raises(InputError, match=r"not a glint index .* overwrite replaces an index"):
        index.save(mine, overwrite=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        index.save(tmp_path / "file", overwrite=True)
    (tmp_path / "empty").mkdir()
    index.save(tmp_path / "empty", overwrite=True)
    assert (mine / "cat.jpg").read_bytes() == b"meow"
    assert _leftovers(tmp_path) == []


def test_overwrite_swaps_the_directories(tmp_path: Path, data) -> None:
    """With an exchange, the new index takes the place of the old in one step."""
    out = build_index(data(20, 8), "flat").save(tmp_path / "ix")
    before = out.stat().st_ino
    build_index(data(30, 8), "flat").save(out, overwrite=True)
    assert out.stat().st_ino != before and load_index(out).count == 30
    assert _leftovers(tmp_path) == []


# -- kill -9, for real -------------------------------------------------------------------------


class Builds:
    """Two inputs (with their ids) that ``glint build`` alternates over one ``--out``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.out = root / "ix"
        self.inputs = {}
        for name, seed, first_id in (("a", 1, 10_000), ("b", 2, 50_000)):
            vectors = clustered(N, DIM, seed=seed)
            np.save(root / f"{name}.npy", vectors)
            np.save(root / f"{name}_ids.npy", np.arange(N, dtype=np.int64) + first_id)
            self.inputs[str(root / f"{name}.npy")] = (vectors, first_id)

    def command(self, i: int) -> list[str]:
        name = "ab"[i % 2]
        vectors, ids = self.root / f"{name}.npy", self.root / f"{name}_ids.npy"
        spec = "flat" if i % 3 else "hnsw:m=8,ef_construction=40,storage=f32"
        return [GLINT, "build", str(vectors), "--ids", str(ids), "--index", spec, "--metric", "l2"]

    def check_whole(self) -> None:
        """``--out`` is a complete index, verified, that finds its own vectors' ids."""
        index = load_index(self.out, verify=True)
        assert index.manifest is not None
        vectors, first_id = self.inputs[index.manifest["build"]["source"]]
        rows = np.arange(0, N, 97)
        found = index.search(vectors[rows], k=1)
        np.testing.assert_array_equal(found.ids[:, 0], rows + first_id)
        index.close()

    def clean_build(self, i: int) -> float:
        """Build ``i`` to the end; no temporary directory is left. Returns its seconds."""
        started = time.monotonic()
        run_glint(*self.command(i)[1:], "--out", self.out, "--overwrite")
        seconds = time.monotonic() - started
        assert _leftovers(self.root) == []
        self.check_whole()
        return seconds


def _env(*, step: str | None, two_step: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLINT_")}
    if step is not None:
        env["GLINT_FAULT_AFTER"] = step
    if two_step:
        env["GLINT_NO_RENAME_EXCHANGE"] = "1"
    return env


def _killed_build(
    builds: Builds, i: int, env: dict[str, str], delay: float | None
) -> tuple[int, float]:
    """Run build ``i`` until its fault point kills it, or SIGKILL it after ``delay`` s.
    Returns its exit status (-9 when killed; 0 if it finished first) and its seconds."""
    cmd = [*builds.command(i), "--out", str(builds.out), "--overwrite"]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        proc.wait(timeout=delay if delay is not None else 120)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    seconds = time.monotonic() - started
    assert proc.stderr is not None
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.returncode in (0, -signal.SIGKILL), stderr
    return int(proc.returncode), seconds


def test_one_named_fault_of_each_path(tmp_path: Path) -> None:
    """Quick version of the loop below: a kill between the two renames of the portable path
    (``--out`` missing until a reader puts it back) and just after the exchange."""
    builds = Builds(tmp_path)
    builds.clean_build(0)
    for i, (step, two_step) in enumerate((("old-moved", True), ("exchanged", False)), 1):
        assert _killed_build(builds, i, _env(step=step, two_step=two_step), None)[0] < 0
        assert builds.out.is_dir() == (step != "old-moved")
        builds.check_whole()
        assert len(_leftovers(tmp_path)) == 1  # the dead build's directory: stale
    builds.clean_build(3)


@pytest.mark.slow
def test_kill_nine_anywhere_leaves_a_whole_index(tmp_path: Path) -> None:
    """30 builds with --overwrite killed: one at each named point of both replacement paths,
    the rest at random times (seeded) through the whole build; after each, --out is a whole
    index, and after every completed build no temporary directory is left."""
    builds = Builds(tmp_path)
    rng = np.random.default_rng(15)
    shortest = builds.clean_build(0)  # the random kills fall within a whole build's time
    plan: list[tuple[str | None, bool, float | None]] = [
        *((step, False, None) for step in EXCHANGE_STEPS),
        *((step, True, None) for step in TWO_STEP_STEPS),
    ]
    while len(plan) < 30:  # the rest: a share of the shortest build seen so far
        plan.append((None, len(plan) % 2 == 0, float(rng.uniform(0.4, 1.0))))
    killed = 0
    for i, which in enumerate(rng.permutation(len(plan)), 1):
        step, two_step, share = plan[which]
        delay = None if share is None else share * shortest
        status, seconds = _killed_build(builds, i, _env(step=step, two_step=two_step), delay)
        killed += int(status < 0)
        if step is not None:
            assert status < 0, f"build did not die at {step}"
        elif status == 0:
            shortest = min(shortest, seconds)
        # missing only if the portable path died between its renames (known for old-moved)
        if not two_step or step not in (None, "old-moved"):
            assert builds.out.is_dir(), (step, two_step, delay)
        builds.check_whole()  # a reader puts back what a two-step replacement moved aside
        if i % 3 == 0:
            shortest = min(shortest, builds.clean_build(i))
    builds.clean_build(len(plan) + 1)
    assert killed >= len(EXCHANGE_STEPS) + len(TWO_STEP_STEPS) + 5  # random ones too
