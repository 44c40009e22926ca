"""service/storage.py: ids, TTL, disk cap, owners, restart adoption."""

import os
import re

import pytest

from service.storage import ResultStore, valid_id


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


def _finish(store: ResultStore, size: int, owner=None) -> str:
    result_id = store.reserve(owner)
    folder = store.path(result_id)
    folder.mkdir()
    (folder / "figurine.glb").write_bytes(b"x" * size)
    store.commit(result_id)
    return result_id


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(tmp_path, clock):
    return ResultStore(tmp_path / "results", ttl_s=60, max_bytes=10_000, clock=clock)


def test_ids_are_unguessable_and_path_safe(store):
    ids = {store.reserve() for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", i) for i in ids)
    for bad in ("..", "../../etc", "a/b", "", "x" * 22 + "/", "%2e%2e", "a" * 21, "a" * 23):
        assert not valid_id(bad)
        assert store.file(bad, "report.json") is None
        with pytest.raises(ValueError):
            store.path(bad)


def test_only_finished_live_results_are_served(store, clock):
    pending = store.reserve()
    assert store.file(pending, "figurine.glb") is None
    done = _finish(store, 100)
    assert store.file(done, "figurine.glb").read_bytes() == b"x" * 100
    for sneaky in ("../figurine.glb", "a/b", "..", ".hidden"):
        assert store.file(done, sneaky) is None
    clock.now += 61
    assert store.file(done, "figurine.glb") is None  # expired even before the purge runs


def test_purge_deletes_expired_results_but_not_running_ones(store, clock):
    old = _finish(store, 100)
    running = store.reserve()
    store.path(running).mkdir()
    clock.now += 61
    assert store.purge() == 1
    assert not store.path(old).exists()
    assert store.path(running).exists()


def test_disk_cap_evicts_oldest_and_keeps_the_newest(store, clock):
    ids = []
    for _ in range(5):
        ids.append(_finish(store, 3000))
        clock.now += 1
    assert store.total_bytes <= 10_000
    assert [store.file(i, "figurine.glb") is not None for i in ids] == [False, False, True, True, True]
    on_disk = sum(f.stat().st_size for f in store.root.rglob("*") if f.is_file())
    assert on_disk == store.total_bytes
    # A result bigger than the whole cap still survives its own commit: its client needs it.
    big = _finish(store, 20_000)
    assert store.file(big, "figurine.glb") is not None and store.count == 1


def test_discard_and_forget_owner(store):
    failed = store.reserve()
    store.path(failed).mkdir()
    store.discard(failed)
    assert not store.path(failed).exists()

    mine = _finish(store, 10, owner="session-a")
    theirs = _finish(store, 10, owner="session-b")
    in_flight = store.reserve(owner="session-a")
    store.path(in_flight).mkdir()
    assert store.forget_owner("session-a") == 1
    assert not store.path(mine).exists() and store.path(theirs).exists()
    assert store.commit(in_flight) is False  # its owner left while it ran
    assert not store.path(in_flight).exists()


def test_a_restarted_store_adopts_old_results_and_drops_strangers(tmp_path, clock):
    first = ResultStore(tmp_path / "r", ttl_s=60, max_bytes=10_000, clock=clock)
    kept = _finish(first, 50)
    (first.root / "not-an-id").mkdir()
    (first.root / "stray.txt").write_text("x")
    old = first.path(kept)
    os.utime(old, (clock.now, clock.now))
    second = ResultStore(tmp_path / "r", ttl_s=60, max_bytes=10_000, clock=clock)
    assert second.file(kept, "figurine.glb") is not None
    assert len(list(second.root.iterdir())) == 3  # building a store deletes nothing
    assert second.purge() == 0
    assert sorted(p.name for p in second.root.iterdir()) == [kept]
    clock.now += 61
    assert second.purge() == 1
