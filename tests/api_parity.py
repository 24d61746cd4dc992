"""One script, two runtimes: LiteRT's Python Interpreter API exercised call by call.

`exercise(api, ...)` takes a module with `Interpreter` and `OpResolverType` (ai_edge_litert.interpreter,
or refnet) and returns what each call gave as plain data (arrays as dtype, shape and bytes;
exceptions as the built-in exception classes they are instances of), so that the two runtimes'
records can be compared with ==. tests/test_api_parity.py runs it against both.
"""
from __future__ import annotations

import numpy as np

# The built-in classes a caller catches: an error must be an instance of the same ones as LiteRT's.
CAUGHT_AS = (ValueError, RuntimeError, TypeError, IndexError, KeyError)


def as_data(value):
    """Arrays and numpy scalars as comparable plain data (bytes, so -0.0 and NaN bits count)."""
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, tuple(value.shape), value.tobytes())
    if isinstance(value, np.generic):
        return ("scalar", value.dtype.str, value.tobytes())
    if isinstance(value, type) and issubclass(value, np.generic):
        return ("dtype", np.dtype(value).str)
    if isinstance(value, dict):
        return {k: as_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_data(v) for v in value]
    return value


def outcome(call):
    """What a call gave: its result as data, or the built-in exception classes of its error."""
    try:
        return ("ok", as_data(call()))
    except Exception as e:  # the kind of error is what is compared
        return ("error", [c.__name__ for c in CAUGHT_AS if isinstance(e, c)])


def _input_for(detail: dict, shape=None, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = list(detail["shape"] if shape is None else shape)
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return rng.uniform(-1, 1, size=shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, int(info.max) + 1, size=shape).astype(dtype)


def exercise(api, signature_model: bytes, plain_model_path: str) -> dict:
    """Every public Interpreter call on two models, under BUILTIN_REF (refnet's reference profile)."""
    ref = api.OpResolverType.BUILTIN_REF
    rec = {}

    def make(**kw):
        return api.Interpreter(experimental_op_resolver_type=ref, **kw)

    # --- construction and bad models
    rec["bad content"] = outcome(lambda: make(model_content=b"\x00" * 64))
    rec["missing path"] = outcome(lambda: make(model_path=plain_model_path + ".missing"))

    # --- a model without signatures, from a path
    it = make(model_path=plain_model_path)
    rec["num_subgraphs"] = outcome(it.num_subgraphs)
    rec["signature list, none"] = outcome(it.get_signature_list)
    rec["signature runner, none"] = outcome(lambda: it.get_signature_runner())
    rec["invoke before allocate"] = outcome(it.invoke)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    rec["input details"] = outcome(it.get_input_details)
    rec["output details"] = outcome(it.get_output_details)
    rec["tensor count"] = len(it.get_tensor_details())
    x = _input_for(inp)
    it.set_tensor(inp["index"], x)
    it.invoke()
    rec["output"] = outcome(lambda: it.get_tensor(out["index"]))
    rec["tensor() view"] = outcome(lambda: it.tensor(out["index"])())
    rec["reset_all_variables"] = outcome(it.reset_all_variables)
    rec["output after reset"] = outcome(lambda: it.get_tensor(out["index"]))
    rec["set wrong dtype"] = outcome(lambda: it.set_tensor(inp["index"], x.astype(np.float64)))
    rec["set wrong shape"] = outcome(lambda: it.set_tensor(inp["index"], x[..., :1]))
    rec["get bad index"] = outcome(lambda: it.get_tensor(10**6))

    # --- resize: the Coral model's RESHAPE fixes batch 1, so allocating at batch 2 fails
    batch = [2] + list(inp["shape"][1:])
    rec["resize bad rank"] = outcome(lambda: it.resize_tensor_input(inp["index"], [2, 3]))
    rec["resize to batch 2"] = outcome(lambda: it.resize_tensor_input(inp["index"], batch))
    rec["input shape after resize"] = outcome(lambda: it.get_input_details()[0]["shape"])
    rec["allocate at batch 2"] = outcome(it.allocate_tensors)
    it.resize_tensor_input(inp["index"], list(inp["shape"]))
    it.allocate_tensors()
    it.set_tensor(inp["index"], x)
    it.invoke()
    rec["batch 1 again"] = outcome(lambda: it.get_tensor(out["index"]))

    # --- a model with a SignatureDef (converted from Keras), from bytes
    sig = make(model_content=signature_model)
    rec["signature list"] = outcome(sig.get_signature_list)
    rec["runner, bad key"] = outcome(lambda: sig.get_signature_runner("no such key"))
    runner = sig.get_signature_runner()
    rec["runner input details"] = outcome(runner.get_input_details)
    rec["runner output details"] = outcome(runner.get_output_details)
    (name, detail), = runner.get_input_details().items()
    rec["runner call"] = outcome(lambda: runner(**{name: _input_for(detail, seed=2)}))
    three = [3] + list(detail["shape"][1:])
    rec["runner call, batch 3"] = outcome(lambda: runner(**{name: _input_for(detail, three, seed=3)}))
    rec["runner, wrong name"] = outcome(lambda: runner(**{name + "_x": _input_for(detail)}))
    rec["runner, no inputs"] = outcome(lambda: runner())

    # --- the same model through the Interpreter: its batch dimension is free (-1)
    sig = make(model_content=signature_model)
    in_file = len(sig.get_tensor_details())  # LiteRT's kernels may add scratch tensors at allocate
    sig.allocate_tensors()
    sin, sout = sig.get_input_details()[0], sig.get_output_details()[0]
    rec["signature model details"] = outcome(lambda: (sig.get_input_details(), sig.get_output_details()))
    four = [4] + list(sin["shape"][1:])
    rec["strict resize of a fixed dim"] = outcome(
        lambda: sig.resize_tensor_input(sin["index"], [4, 33] + list(sin["shape"][2:]), strict=True))
    sig.resize_tensor_input(sin["index"], four, strict=True)
    rec["shapes after strict resize"] = outcome(
        lambda: (sig.get_input_details()[0]["shape"], sig.get_output_details()[0]["shape"]))
    rec["invoke after resize, before allocate"] = outcome(sig.invoke)
    sig.allocate_tensors()
    rec["output shape after allocate"] = outcome(lambda: sig.get_output_details()[0]["shape"])
    rec["tensor shapes after allocate"] = outcome(
        lambda: [tuple(d["shape"]) for d in sig.get_tensor_details()[:in_file]])
    sig.set_tensor(sin["index"], _input_for(sin, four, seed=4))
    sig.invoke()
    rec["batch 4 output"] = outcome(lambda: sig.get_tensor(sout["index"]))
    return rec
