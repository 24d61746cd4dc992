"""refnet.bounded: a reader in a child process under a deadline and a memory limit; every way
the child can fail becomes a typed error in the parent, except bugs (untyped exceptions),
which keep their class and carry the child's traceback."""
from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from refnet.bounded import CheckpointReaderCrash, CheckpointReadTimeout, run_bounded
from refnet.errors import InvalidModelError, MemoryLimitError, ModelFormatError


def _sleep(seconds):
    time.sleep(seconds)


def _segfault():
    os.kill(os.getpid(), signal.SIGSEGV)


def _allocate(nbytes):
    return np.ones(nbytes, np.uint8).sum()


def _refnet_error():
    raise InvalidModelError("model.h5: layer 'x' is odd")


def _index_error():
    return [][3]


def _pid_and_store():
    from refnet.models import ArchSpec
    from refnet.weights_store import WeightStore
    return os.getpid(), WeightStore(ArchSpec("mobilenet_v2", 0.35, 96), {"a": np.arange(3, dtype=np.float32)},
                                    {"source_file": "x.h5"})


def _children() -> set[int]:
    """This process's child pids (zombies included), from /proc."""
    me = str(os.getpid())
    out = set()
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[1] == me:
                    out.add(int(pid))
        except (OSError, IndexError, ValueError):
            pass
    return out


def test_result_comes_back_pickled():
    pid, store = run_bounded(_pid_and_store, source="x.h5")
    assert pid != os.getpid()
    assert store.spec.depth_multiplier == 0.35 and store.tensors["a"].tolist() == [0, 1, 2]
    assert not _children()


def test_deadline_is_a_typed_timeout_and_the_child_is_gone():
    start = time.monotonic()
    with pytest.raises(CheckpointReadTimeout) as info:
        run_bounded(_sleep, 30, source="damaged.h5", what="reading this HDF5 file", timeout=1)
    assert time.monotonic() - start < 5
    assert isinstance(info.value, ModelFormatError)
    msg = str(info.value)
    assert msg.startswith("damaged.h5: reading this HDF5 file did not finish in 1 s")
    assert "re-download or re-save" in msg and "\n" not in msg
    assert not _children()


def test_timeout_from_the_environment(monkeypatch):
    monkeypatch.setenv("REFNET_IMPORT_TIMEOUT", "0.5")
    with pytest.raises(CheckpointReadTimeout, match="in 0.5 s"):
        run_bounded(_sleep, 30, source="a.h5")


def test_signal_is_a_typed_crash_naming_it():
    with pytest.raises(CheckpointReaderCrash) as info:
        run_bounded(_segfault, source="bad.keras", what="reading this .keras archive")
    assert str(info.value).startswith("bad.keras: reading this .keras archive crashed the reader (SIGSEGV)")
    assert not _children()


def test_allocation_past_the_limit_is_memory_limit_error():
    with pytest.raises(MemoryLimitError) as info:
        run_bounded(_allocate, 2 << 30, source="huge.h5", memory_limit=256 << 20)
    assert str(info.value).startswith("huge.h5: ") and "REFNET_IMPORT_MEMORY" in str(info.value)
    assert run_bounded(_allocate, 64 << 20, source="ok.h5", memory_limit=256 << 20) == 64 << 20


def test_refnet_error_keeps_class_and_message():
    with pytest.raises(InvalidModelError) as info:
        run_bounded(_refnet_error, source="model.h5")
    assert type(info.value) is InvalidModelError and str(info.value) == "model.h5: layer 'x' is odd"


def test_other_exceptions_stay_untyped_with_the_child_traceback():
    with pytest.raises(IndexError) as info:
        run_bounded(_index_error, source="model.h5")
    assert type(info.value) is IndexError
    notes = "".join(getattr(info.value, "__notes__", []))
    assert "raised in the bounded reader process" in notes and "_index_error" in notes
    assert "return [][3]" in notes
