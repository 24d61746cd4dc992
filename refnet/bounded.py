"""Run a reader of an untrusted file in a child process, with a deadline and a memory limit.

Why: a checkpoint is untrusted input, and refnet reads HDF5 through the HDF5 C library (h5py),
which can loop forever, crash or allocate without bound on some corrupt structures. Python
cannot interrupt C code, so the read runs in a child process (fork on Linux: no re-import, a
few ms) that the parent kills at the deadline; RLIMIT_AS in the child turns a runaway
allocation into a MemoryError there. The result comes back pickled.

    run_bounded(fn, *args, source=path_as_typed, what="reading this HDF5 file")

- the deadline passes            -> CheckpointReadTimeout (the child is killed and reaped)
- the child dies by a signal     -> CheckpointReaderCrash naming the signal
- MemoryError in the child       -> MemoryLimitError naming the file
- a RefnetError in the child     -> the same error (class and message) in the parent
- any other exception            -> the same class in the parent, the child's traceback
                                    attached as a note: a bug to fix, not hidden as typed

Deadline: `timeout` seconds, else $REFNET_IMPORT_TIMEOUT, else 60. Memory: `memory_limit` bytes
of address space on top of what the parent already maps, else $REFNET_IMPORT_MEMORY (bytes),
else 4 GiB.
"""
from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import tempfile
import traceback

from .errors import MemoryLimitError, ModelFormatError, RefnetError

DEFAULT_TIMEOUT = 60.0
DEFAULT_MEMORY = 4 << 30


class CheckpointReadTimeout(ModelFormatError):
    """Reading a checkpoint did not finish before the deadline (a loop in a damaged file)."""


class CheckpointReaderCrash(ModelFormatError):
    """The process reading a checkpoint was killed by a signal (a crash in a C library)."""


def import_timeout(timeout: float | None = None) -> float:
    if timeout is not None:
        return float(timeout)
    text = os.environ.get("REFNET_IMPORT_TIMEOUT", "")
    try:
        return float(text) if text else DEFAULT_TIMEOUT
    except ValueError:
        raise RefnetError(f"REFNET_IMPORT_TIMEOUT={text!r}: give seconds, e.g. 60") from None


def import_memory(memory_limit: int | None = None) -> int:
    if memory_limit is not None:
        return int(memory_limit)
    text = os.environ.get("REFNET_IMPORT_MEMORY", "")
    try:
        return int(text) if text else DEFAULT_MEMORY
    except ValueError:
        raise RefnetError(f"REFNET_IMPORT_MEMORY={text!r}: give bytes, e.g. 4294967296") from None


def _mapped_bytes() -> int:
    """The address space this process maps now (a forked child starts with all of it)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _limit_address_space(extra: int) -> None:
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    want = _mapped_bytes() + extra
    for cap in (soft, hard):  # never above a limit the parent already runs under
        if cap != resource.RLIM_INFINITY:
            want = min(want, cap)
    resource.setrlimit(resource.RLIMIT_AS, (want, hard))


def _child(conn, result_path: str, extra_memory: int, fn, args, kwargs) -> None:
    """Runs in the child: the result goes to `result_path` (a file in /dev/shm: a 14 MB weight
    store through a pipe takes ~100 ms of context switches on a busy machine, a file ~10 ms),
    what went wrong through `conn`."""
    import faulthandler
    faulthandler.disable()  # a crash is reported by the parent in one line, not as a C stack dump
    try:
        if extra_memory > 0:
            _limit_address_space(extra_memory)
        result = fn(*args, **kwargs)
        with open(result_path, "wb") as f:
            pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)
        reply = ("ok", None)
    except MemoryError:
        reply = ("memory", None)
    except RefnetError as e:
        reply = ("refnet", e)
    except BaseException as e:  # noqa: BLE001 - every other error is reported, not hidden
        reply = ("other", (type(e), e.args, "".join(traceback.format_exception(e))))
    try:
        conn.send(reply)
    except Exception as e:  # an unpicklable result or exception: say so, with its class
        conn.send(("other", (TypeError, (f"cannot send back {reply[0]} ({e})",),
                             "".join(traceback.format_exception(e)))))
    conn.close()


def _context():
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _reraise_other(cls, args, child_traceback: str):
    try:
        exc = cls(*args)
    except Exception:  # a class whose constructor does not take its own args back
        exc = RuntimeError(f"{cls.__module__}.{cls.__qualname__}: {args}")
    exc.add_note(f"raised in the bounded reader process:\n{child_traceback}")
    raise exc


def run_bounded(fn, *args, source: str, what: str = "reading this file",
                timeout: float | None = None, memory_limit: int | None = None, **kwargs):
    """fn(*args, **kwargs) in a child process; see the module docstring for the outcomes.
    `source`: the file as the user typed it; `what`: the action, for the messages."""
    seconds = import_timeout(timeout)
    extra = import_memory(memory_limit)
    receiver, sender = _context().Pipe(duplex=False)
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    fd, result_path = tempfile.mkstemp(prefix="refnet-bounded-", suffix=".pickle", dir=shm)
    os.close(fd)
    # not daemonic: a daemonic caller (a multiprocessing pool worker) may not have daemonic
    # children; the finally below reaps the child on every path instead
    child = _context().Process(target=_child, args=(sender, result_path, extra, fn, args, kwargs))
    child.start()
    sender.close()  # the parent keeps only the reading end: EOF when the child is gone
    try:
        if not receiver.poll(seconds):
            why = " (the HDF5 library loops on some corrupt structures)" if "HDF5" in what else ""
            raise CheckpointReadTimeout(
                f"{source}: {what} did not finish in {seconds:g} s: the file is damaged{why}; "
                f"re-download or re-save it (or set REFNET_IMPORT_TIMEOUT=SECONDS if it is sound "
                f"and the machine slow)")
        try:
            status, payload = receiver.recv()
        except EOFError:  # the child died before answering
            child.join()
            code = child.exitcode
            if code is not None and code < 0:
                name = signal.Signals(-code).name
                raise CheckpointReaderCrash(
                    f"{source}: {what} crashed the reader ({name}): the file is damaged; "
                    f"re-download or re-save it") from None
            raise CheckpointReaderCrash(f"{source}: the reader process exited with status {code} "
                                        f"while {what}; re-download or re-save the file") from None
        if status == "ok":
            with open(result_path, "rb") as f:
                return pickle.load(f)
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join()  # reaped: no zombie left behind
        os.unlink(result_path)
    if status == "memory":
        raise MemoryLimitError(f"{source}: {what} needed more than {extra / (1 << 30):g} GiB of "
                               f"memory: the file is damaged (sizes out of range); re-download or "
                               f"re-save it (or raise REFNET_IMPORT_MEMORY, bytes)")
    if status == "refnet":
        raise payload
    _reraise_other(*payload)
