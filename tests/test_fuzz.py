"""Untrusted models never crash refnet.

1. A CI-sized fuzz run (tools.fuzz: bit flips, extreme 4-byte overwrites, truncations and
   schema-field mutations, aimed at the tables) over small real, generated and mini models, in
   worker subprocesses under an address-space limit: 0 crashes, hangs, unbounded allocations
   and untyped exceptions.
2. Each validation a reader makes before execution, one malformed model at a time: the right
   refnet.RefnetError subclass, with the file, tensor or op named in the message.
3. The memory guard: a model whose tensors need more than the limit is refused at
   allocate_tensors, before anything is allocated; the limit is settable.
4. Checkpoints (.h5, .keras, .weights.h5, TensorBundle) and images (JPEG, PNG, BMP) are
   untrusted input too: a CI-sized fuzz run per format (seeds built with TensorFlow once, into
   .cache/fuzz-seeds), the HDF5 hang a user met as a regression, and the CLI's answer to it.
"""
from __future__ import annotations

import os
import resource
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

import refnet
from refnet import (InvalidModelError, MemoryLimitError, ModelFormatError, RefnetError,
                    UnsupportedOpError)
from refnet.graph import Quantization
from refnet.tflite_writer import ModelBuilder, write_tflite
from tools import fuzz

CI_COUNT = 300


# ------------------------------------------------------------------------------------------
# 1. CI-sized fuzz run
# ------------------------------------------------------------------------------------------

def _ci_seeds(shared) -> dict[str, bytes]:
    specs = ["mini"]
    if shared is not None:
        specs += [str(shared / "models" / "mobilenet_v1_0.25_128_quant.tflite"),
                  str(shared / "models" / "mobilenet_v2_1.0_224_quant.tflite"),
                  str(shared / "models" / "mobilenet_v1_0.25_128_quant_edgetpu.tflite")]
    seeds = fuzz.load_seeds(specs)
    for family, kind in (("v3_small", "uint8_io"), ("v2", "float32")):
        path = fuzz._factory_path(family, kind)  # only when cached: the test never builds
        if path is not None:
            seeds[f"factory:{family}:{kind}"] = path.read_bytes()
    # an SSD detector (its post-process op's flexbuffer options mutated too), when cached
    seeds.update({k: v for k, v in fuzz.load_seeds(["detector"]).items() if k.endswith("v2_int8")})
    return seeds


@pytest.fixture(scope="module")
def shared_or_none():
    models = fuzz.SHARED_MODELS
    return models.parent if models.is_dir() else None


def test_fuzz_ci_run(shared_or_none, tmp_path):
    seeds = _ci_seeds(shared_or_none)
    results = fuzz.run_campaign(seeds, count=CI_COUNT, seed=20240601, jobs=2, timeout=20,
                                address_space=4 * fuzz.GIB, out=tmp_path)
    assert len(results) == CI_COUNT
    problems = [r for r in results if r.outcome in fuzz.PROBLEMS]
    if problems:
        import io
        text = io.StringIO()
        fuzz.report(results, file=text)
        pytest.fail(f"{len(problems)} fuzz problems (saved in {tmp_path}):\n{text.getvalue()}")
    outcomes = {r.outcome for r in results}
    assert {"ran", "typed"} <= outcomes  # the mutants reach the kernels, and get rejected too
    assert {r.kind for r in results} == set(fuzz.MUTATIONS)


def test_mutants_are_reproducible():
    seeds = fuzz.load_seeds(["mini:int8"])
    a, b = fuzz.Campaign(seeds, 5), fuzz.Campaign(seeds, 5)
    for i in range(20):
        assert a.mutant(i) == b.mutant(i)


def test_layout_finds_tables_at_either_end():
    """refnet's writer puts the tables first and the buffers last; LiteRT's converter the
    other way round. The mutation target (non-buffer bytes) must follow the file, not a guess."""
    data = fuzz._mini_model("int8")
    lay = fuzz.analyse(data)
    first_buffer = min(a for a, _ in lay.buffer_ranges)
    assert lay.table_bytes[0] == 0 and first_buffer > len(data) // 2
    assert lay.sites and all(0 <= s.pos < len(data) for s in lay.sites)


def test_worker_classifies_crash_hang_and_memory(tmp_path, monkeypatch):
    """The runner's own classification: a signal is a crash, silence a hang, a MemoryError
    that is not refnet's a memory problem, and a worker is restarted after each."""
    w = fuzz.Worker(0, 4 * fuzz.GIB, tmp_path)
    try:
        outcome = w.run(0, fuzz._mini_model("float32"), timeout=60)
        assert outcome[0] == "ran"
        import os
        import signal
        # SIGKILL, not SIGSEGV: under tools/sanitize.sh ASan would catch a SEGV and report it
        os.kill(w.proc.pid, signal.SIGKILL)
        outcome = w.run(1, fuzz._mini_model("float32"), timeout=60)
        assert outcome[0] == "crash" and outcome[1] == "SIGKILL"
        outcome = w.run(2, fuzz._mini_model("int8"), timeout=60)  # restarted
        assert outcome[0] == "ran" and w.restarts == 1
        os.kill(w.proc.pid, signal.SIGSTOP)
        outcome = w.run(3, fuzz._mini_model("int8"), timeout=2)
        assert outcome[0] == "hang"
    finally:
        w.stop()
    assert fuzz.classify_exception(MemoryError("x"))[0] == "memory"
    wrapped = refnet.OpExecutionError("op 3 failed")
    wrapped.__cause__ = MemoryError()
    assert fuzz.classify_exception(wrapped)[0] == "memory"
    assert fuzz.classify_exception(MemoryLimitError("limit"))[0] == "typed"
    assert fuzz.classify_exception(IndexError("x"))[0] == "untyped"
    assert fuzz.classify_exception(InvalidModelError("x"))[0] == "typed"


# ------------------------------------------------------------------------------------------
# 2. Validation before execution: one defect at a time
# ------------------------------------------------------------------------------------------

def _int8_conv(**tweak) -> ModelBuilder:
    """input (1,4,4,2) int8 -> CONV_2D 3x3 SAME per-channel -> output (1,4,4,3)."""
    rng = np.random.default_rng(0)
    mb = ModelBuilder()
    x = mb.input("image", (1, 4, 4, 2), np.int8, scale=0.05, zero_point=-3)
    w = mb.tensor("conv/weights", (3, 3, 3, 2), np.int8, data=rng.integers(-127, 128, (3, 3, 3, 2)),
                  scale=np.array([0.01, 0.02, 0.03], np.float32), zero_point=0, axis=0)
    b = mb.tensor("conv/bias", (3,), np.int32, data=[10, -20, 30],
                  scale=np.array([0.0005, 0.001, 0.0015], np.float32), zero_point=0)
    y = mb.tensor("conv/out", (1, 4, 4, 3), np.int8, scale=0.1, zero_point=2)
    mb.op("CONV_2D", [x, w, b], [y], padding="SAME", stride_h=1, stride_w=1,
          fused_activation_function="NONE")
    mb.outputs.append(y)
    return mb


def _run(data: bytes):
    it = refnet.Interpreter(model_content=data)
    it.allocate_tensors()
    it.invoke()
    return it


def _raises(data: bytes, error, *fragments, tmp_path=None):
    """Run `data` (from a file when tmp_path is given) and check the error and its message."""
    if tmp_path is not None:
        path = tmp_path / "model.tflite"
        path.write_bytes(data)
        with pytest.raises(error) as info:
            it = refnet.Interpreter(model_path=str(path))
            it.allocate_tensors()
            it.invoke()
        fragments = fragments + (str(path),)
    else:
        with pytest.raises(error) as info:
            _run(data)
    message = str(info.value)
    for f in fragments:
        assert f in message, f"{f!r} not in {message!r}"
    return message


def test_valid_base_model_runs():
    _run(_int8_conv().build())


def test_not_a_tflite_file(tmp_path):
    _raises(b"\x00" * 64, ModelFormatError, "not a .tflite file", tmp_path=tmp_path)
    _raises(b"TFL3", ModelFormatError, "too short", tmp_path=tmp_path)


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5, 0.7, 0.9, 0.99])
def test_truncated_file(tmp_path, fraction):
    data = _int8_conv().build()
    _raises(data[:int(len(data) * fraction)], RefnetError, tmp_path=tmp_path)


def test_offset_outside_the_file(tmp_path):
    data = bytearray(_int8_conv().build())
    struct.pack_into("<I", data, 0, len(data) + 1000)  # root table offset
    _raises(bytes(data), ModelFormatError, tmp_path=tmp_path)


def test_vector_length_past_the_end(tmp_path):
    data = _int8_conv().build()
    lay = fuzz.analyse(data)
    site = next(s for s in lay.sites if s.label == "tensor[1].shape.length")
    bad = bytearray(data)
    struct.pack_into("<I", bad, site.pos, 0x7FFFFFFF)
    _raises(bytes(bad), RefnetError, tmp_path=tmp_path)


def test_buffer_size_not_shape_times_dtype(tmp_path):
    mb = _int8_conv()
    mb.tensors[1].data = mb.tensors[1].data.reshape(-1)[:10]
    _raises(write_tflite(mb.graph()), InvalidModelError, "tensor 1 'conv/weights'", "buffer holds 10 bytes",
            "needs 54", tmp_path=tmp_path)


def test_negative_dimension():
    mb = _int8_conv()
    mb.tensors[3].shape = (1, -4, 4, 3)
    _raises(mb.build(), InvalidModelError, "tensor 3 'conv/out'", "negative dimension")


def test_element_count_does_not_wrap():
    """65536**4 elements is 0 in int64: the count must be exact, not wrapped past the guard."""
    mb = ModelBuilder()
    shape = (65536, 65536, 65536, 65536)
    x = mb.input("x", shape, np.float32)
    y = mb.tensor("y", shape, np.float32)
    mb.op("RELU", [x], [y])
    mb.outputs.append(y)
    _raises(mb.build(), RefnetError, "tensor 0 'x'")


@pytest.mark.parametrize("scale", [np.nan, np.inf, -np.inf, -0.5, 0.0])
def test_bad_scale(scale):
    mb = _int8_conv()
    mb.tensors[3].quantization.scale = np.array([scale], np.float32)
    _raises(mb.build(), InvalidModelError, "tensor 3 'conv/out'", "scales must be finite and > 0")


@pytest.mark.parametrize("zp", [-129, 128, 1000, -(2**40)])
def test_zero_point_out_of_range(zp):
    mb = _int8_conv()
    mb.tensors[0].quantization.zero_point = np.array([zp], np.int64)
    _raises(mb.build(), InvalidModelError, "tensor 0 'image'", "zero point outside the int8 range")


@pytest.mark.parametrize("axis,scales", [(3, 3), (7, 3), (-1, 3), (0, 2), (0, 5)])
def test_per_channel_axis_or_length(axis, scales):
    mb = _int8_conv()
    q = mb.tensors[1].quantization
    mb.tensors[1].quantization = Quantization(scale=np.full(scales, 0.01, np.float32),
                                              zero_point=np.zeros(scales, np.int64), axis=axis)
    assert q is not None
    _raises(mb.build(), InvalidModelError, "tensor 1 'conv/weights'")


def test_scales_and_zero_points_of_different_lengths():
    mb = _int8_conv()
    mb.tensors[1].quantization.zero_point = np.zeros(2, np.int64)
    _raises(mb.build(), InvalidModelError, "tensor 1 'conv/weights'", "3 scales but 2 zero points")


@pytest.mark.parametrize("index", [4, 99, 2**31 - 1, -2])
def test_op_input_does_not_exist(index):
    mb = _int8_conv()
    mb.ops[0].inputs = (0, index, 2)
    _raises(mb.build(), InvalidModelError, "op 0 (CONV_2D)", f"tensor index {index}")


def test_op_output_does_not_exist():
    mb = _int8_conv()
    mb.ops[0].outputs = (12,)
    _raises(mb.build(), InvalidModelError, "op 0 (CONV_2D)", "tensor index 12")


def test_graph_input_output_does_not_exist():
    mb = _int8_conv()
    mb.outputs[0] = 40
    _raises(mb.build(), InvalidModelError, "outside the tensor table")


def test_cycle():
    """op 0 reads the output of op 1, which reads op 0's output."""
    mb = ModelBuilder()
    x = mb.input("x", (1, 8), np.float32)
    a = mb.tensor("a", (1, 8), np.float32)
    b = mb.tensor("b", (1, 8), np.float32)
    mb.op("ADD", [x, b], [a], fused_activation_function="NONE")
    mb.op("RELU", [a], [b])
    mb.outputs.append(b)
    _raises(mb.build(), InvalidModelError, "op 0 (ADD)", "input tensor 2 'b'", "cycle")


def test_op_writes_a_constant():
    mb = _int8_conv()
    mb.ops[0].outputs = (1,)
    _raises(mb.build(), InvalidModelError, "op 0 (CONV_2D)", "writes constant tensor 1")


def test_opcode_index_outside_table():
    mb = _int8_conv()
    z = mb.tensor("relu", (1, 4, 4, 3), np.int8, scale=0.1, zero_point=2)
    mb.op("RELU", [3], [z])  # op 1: opcode index 1 (0 would be the default, not stored)
    mb.outputs[0] = z
    data = mb.build()
    site = next(s for s in fuzz.analyse(data).sites if s.label == "op[1].opcode_index")
    bad = bytearray(data)
    struct.pack_into("<I", bad, site.pos, 7)
    _raises(bytes(bad), ModelFormatError, "op 1", "opcode index 7 outside the opcode table")


def test_vtable_outside_the_file():
    """A table whose signed vtable offset points before the start of the file (Python would
    read the file's tail there) or past its end."""
    data = _int8_conv().build()
    site = next(s for s in fuzz.analyse(data).sites if s.label == "tensor[1].type")
    for vtable_at in (lambda pos: -64, lambda pos: len(data) + 64):
        bad = bytearray(data)
        # the tensor's table starts where its vtable's soffset is stored: scan back for the
        # word whose vtable lists the type field
        for pos in range(site.pos - site.pos % 4, 0, -4):
            vt = pos - struct.unpack_from("<i", data, pos)[0]
            if 0 <= vt < len(data) - 4 and any(
                    pos + struct.unpack_from("<H", data, vt + 4 + 2 * k)[0] == site.pos
                    for k in range((struct.unpack_from("<H", data, vt)[0] - 4) // 2)):
                struct.pack_into("<i", bad, pos, pos - vtable_at(pos))
                break
        else:
            pytest.fail("tensor table not found")
        _raises(bytes(bad), ModelFormatError, "tensor 1", "vtable")


def test_buffer_index_outside_table():
    data = _int8_conv().build()
    lay = fuzz.analyse(data)
    site = next(s for s in lay.sites if s.label == "tensor[1].buffer")
    bad = bytearray(data)
    struct.pack_into("<I", bad, site.pos, 1000)
    _raises(bytes(bad), ModelFormatError, "tensor 1 'conv/weights'", "buffer index 1000")


def test_unknown_tensor_type():
    data = _int8_conv().build()
    lay = fuzz.analyse(data)
    site = next(s for s in lay.sites if s.label == "tensor[3].type")
    bad = bytearray(data)
    bad[site.pos] = 100
    _raises(bytes(bad), InvalidModelError, "tensor 3 'conv/out'", "tensor type 100")


def test_shapes_inconsistent_with_the_op():
    mb = _int8_conv()
    mb.tensors[1].shape = (3, 3, 3, 5)  # filter depth 5 for an input of depth 2
    mb.tensors[1].data = np.zeros((3, 3, 3, 5), np.int8)
    _raises(mb.build(), InvalidModelError, "op 0 (CONV_2D)", "filter depth 5")


def test_declared_output_shape_inconsistent_with_the_op():
    """CONV_2D computes (1,4,4,3); the model declares (1,4,4,1): never handed to a later op."""
    mb = _int8_conv()
    mb.tensors[3].shape = (1, 4, 4, 1)
    _raises(mb.build(), InvalidModelError, "op 0 (CONV_2D)", "conv/out")


def test_unknown_op_is_typed():
    data = _int8_conv().build()
    lay = fuzz.analyse(data)
    site = next(s for s in lay.sites if s.label == "opcode[0].builtin_code")
    bad = bytearray(data)
    struct.pack_into("<i", bad, site.pos, 150)
    _raises(bytes(bad), UnsupportedOpError, "op 0")


# ------------------------------------------------------------------------------------------
# 3. Memory guard
# ------------------------------------------------------------------------------------------

def _huge_model(elements: int) -> bytes:
    mb = ModelBuilder()
    x = mb.input("x", (4, elements // 4), np.float32)
    y = mb.tensor("y", (4, elements // 4), np.float32)
    mb.op("RELU", [x], [y])
    mb.outputs.append(y)
    return mb.build()


def test_memory_guard_refuses_before_allocating():
    data = _huge_model(4 << 30)  # two tensors of 16 GiB each
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    it = refnet.Interpreter(model_content=data)
    with pytest.raises(MemoryLimitError) as info:
        it.allocate_tensors()
    assert "MiB" in str(info.value) and "memory_limit" in str(info.value)
    assert isinstance(info.value, MemoryError)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert after - before < 100 * 1024  # KiB: nothing of the 32 GiB was touched


def test_memory_limit_is_settable():
    data = _huge_model(1 << 20)  # 8 MiB in all
    with pytest.raises(MemoryLimitError):
        refnet.Interpreter(model_content=data, memory_limit=4 << 20).allocate_tensors()
    it = refnet.Interpreter(model_content=data, memory_limit=16 << 20)
    it.allocate_tensors()
    it.invoke()


# ------------------------------------------------------------------------------------------
# 4. Checkpoints and images
# ------------------------------------------------------------------------------------------

CI_FILE_COUNT = {"h5": 160, "keras": 160, "weights-h5": 160, "tensorbundle": 120, "image": 300}
# outcomes a campaign must show: the mutants reach the model run, and get rejected too
# (every TensorBundle mutant is caught: its .index blocks and tensors carry CRC32Cs)
EXPECTED = {"tensorbundle": {"typed"}}


def test_broken_png_chunk_is_an_input_error(tmp_path):
    """Pillow reports a damaged PNG chunk as SyntaxError (found by the image fuzzer)."""
    from refnet.errors import InputError
    from refnet.images import load_pixels
    from tools import fuzz_seeds

    fuzz_seeds._images(tmp_path)  # the fuzzer's seed images (Pillow only)
    path = tmp_path / "broken.png"
    data = bytearray((tmp_path / "seed.png").read_bytes())
    data[65:129] = bytes(64)  # from the IDAT chunk on: the next chunk's header is zeros
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as info:
        load_pixels(str(path), 12, 12)
    assert str(info.value).startswith(f"{path}: not an image Pillow can read")
    data = bytearray((tmp_path / "seed.png").read_bytes())
    data[11] ^= 4  # the IHDR chunk's length 13 -> 9: Pillow's ValueError "Truncated IHDR chunk"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="Truncated IHDR chunk"):
        load_pixels(str(path), 12, 12)


@pytest.fixture(scope="module")
def file_seeds():
    """Built with TensorFlow when .cache/fuzz-seeds lacks them (tools.fuzz_seeds, ~10 s)."""
    pytest.importorskip("tensorflow")
    return {fmt: fuzz.load_file_seeds(fmt) for fmt in CI_FILE_COUNT}


@pytest.mark.parametrize("fmt", list(CI_FILE_COUNT))
def test_fuzz_ci_run_checkpoints_and_images(fmt, file_seeds, tmp_path):
    results = fuzz.run_campaign(file_seeds[fmt], count=CI_FILE_COUNT[fmt], seed=20240602, jobs=2,
                                timeout=30, address_space=4 * fuzz.GIB, out=tmp_path, fmt=fmt)
    assert len(results) == CI_FILE_COUNT[fmt]
    problems = [r for r in results if r.outcome in fuzz.PROBLEMS]
    if problems:
        import io
        text = io.StringIO()
        fuzz.report(results, file=text)
        pytest.fail(f"{len(problems)} {fmt} fuzz problems (saved in {tmp_path}):\n{text.getvalue()}")
    assert EXPECTED.get(fmt, {"ran", "typed"}) <= {r.outcome for r in results}
    assert {r.kind for r in results} == set(fuzz.mutation_kinds(fmt))
    assert {r.model for r in results} == set(file_seeds[fmt])


def test_file_mutants_are_reproducible(file_seeds):
    for fmt in ("keras", "tensorbundle"):
        a, b = fuzz.Campaign(file_seeds[fmt], 5, fmt=fmt), fuzz.Campaign(file_seeds[fmt], 5, fmt=fmt)
        for i in range(12):
            assert a.mutant(i) == b.mutant(i)


# A user's report: 64 zeroed bytes in a Keras .h5 made h5py's AttributeManager.__getitem__
# (called from keras_h5.read_legacy) loop inside the HDF5 C library for good. Mutant 116 of
# this campaign zeroes 64 bytes of the root group's attribute storage the same way; read
# in-process it hung for more than 60 s when found.
HANG_CAMPAIGN = dict(seed=7, kinds=("zero64",), fmt="h5")
HANG_INDEX, HANG_DESC = 116, "zero64 @4705"


@pytest.fixture(scope="module")
def hdf5_hang(file_seeds, tmp_path_factory):
    name, _, files, desc = fuzz.Campaign(file_seeds["h5"], **HANG_CAMPAIGN).mutant(HANG_INDEX)
    assert (name, desc) == ("v2_0.35_96.h5", HANG_DESC)
    path = tmp_path_factory.mktemp("hang") / "damaged.h5"
    path.write_bytes(files["mutant.h5"])
    return path


def test_hdf5_hang_is_a_typed_timeout(hdf5_hang, monkeypatch):
    from refnet.bounded import CheckpointReadTimeout
    from refnet.model_files import load_model

    monkeypatch.chdir(hdf5_hang.parent)
    start = time.monotonic()
    with pytest.raises(CheckpointReadTimeout) as info:
        load_model("damaged.h5", timeout=3)
    assert time.monotonic() - start < 10
    assert str(info.value).startswith("damaged.h5: reading this HDF5 file did not finish in 3 s: "
                                      "the file is damaged")
    assert isinstance(info.value, ModelFormatError)


def test_cli_convert_of_the_hang_is_one_line(hdf5_hang, tmp_path):
    env = dict(os.environ, REFNET_IMPORT_TIMEOUT="3",
               PYTHONPATH=os.pathsep.join(filter(None, [str(fuzz.REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-m", "refnet", "convert", "damaged.h5", str(tmp_path / "out.h5")],
                          cwd=hdf5_hang.parent, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert proc.stderr.startswith("refnet: error: damaged.h5: reading this HDF5 file did not finish in 3 s")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "out.h5").exists()


# Found by the 10 000-mutant .h5 campaign (seed 100, mutant 6576: 4 bit flips): h5py raises
# TypeError("Unknown string encoding (value 4)") reading a layer's weight_names attribute.
def test_hdf5_damaged_string_encoding_is_typed(file_seeds, tmp_path):
    from refnet.model_files import load_model

    name, _, files, desc = fuzz.Campaign(file_seeds["h5"], seed=100, fmt="h5").mutant(6576)
    assert (name, desc) == ("v2_0.35_96.h5", "bitflip 911477.1,1148115.2,35055.7,1044826.2")
    path = tmp_path / "flipped.h5"
    path.write_bytes(files["mutant.h5"])
    with pytest.raises(ModelFormatError, match="corrupt Keras HDF5 file .TypeError: Unknown string encoding"):
        load_model(str(path), bounded=False)
