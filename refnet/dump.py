"""Dump every tensor a LiteRT build computes for a model and an input: run this on the device.

Needs only NumPy and one LiteRT Python package (ai_edge_litert, tflite_runtime or TensorFlow's
tf.lite); it imports nothing else from refnet, so on a phone (Termux) or a Raspberry Pi it also
runs as a plain script, copied alone:

    python dump.py MODEL.tflite --input x.npy --out tensors.npz [--path optimized]

The .npz holds tensor_<index> for every tensor LiteRT kept, and __build__ (e.g.
"ai-edge-litert-2.3.0/aarch64"), __path__ (reference | optimized | xnnpack), __model_sha256__ and
__inputs__. `refnet verify MODEL --input x.npy --against-dump tensors.npz` compares it with refnet.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys

import numpy as np

# refnet's path names -> LiteRT op resolver (XNNPACK is the default delegate under BUILTIN).
RESOLVERS = {"reference": "BUILTIN_REF", "optimized": "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "xnnpack": "BUILTIN"}
# LiteRT Python packages, in the order they are looked for: (module, distribution name).
PACKAGES = (("ai_edge_litert.interpreter", "ai-edge-litert"), ("tflite_runtime.interpreter", "tflite-runtime"),
            ("tensorflow.lite", "tensorflow"))


class DumpError(Exception):
    """A dump could not be made (no LiteRT, a bad model or input); the message says why."""


def machine() -> str:
    """The architecture as the profile ids name it: x86_64 or aarch64."""
    m = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(m, m)


def find_litert(prefer: str | None = None):
    """(Interpreter class, OpResolverType enum, build id 'DIST-VERSION/ARCH') of a LiteRT package."""
    import importlib
    from importlib import metadata

    for module, dist in PACKAGES:
        if prefer and dist != prefer:
            continue
        try:
            mod = importlib.import_module(module)
            if dist == "tensorflow":  # tf.lite is an attribute of the package, not a plain module
                mod = importlib.import_module("tensorflow").lite
        except Exception:  # not installed, or broken against this NumPy: try the next one
            continue
        interpreter = mod.Interpreter
        resolver = getattr(mod, "OpResolverType", None) or getattr(mod.experimental, "OpResolverType")
        try:
            version = metadata.version(dist if dist != "tensorflow" else "tensorflow-cpu")
        except metadata.PackageNotFoundError:
            version = metadata.version(dist) if dist != "tensorflow" else getattr(mod, "__version__", "unknown")
        return interpreter, resolver, f"{dist}-{version}/{machine()}"
    names = ", ".join(d for _, d in PACKAGES)
    raise DumpError(f"no LiteRT Python package found (looked for {names}): pip install ai-edge-litert "
                    f"(or tflite-runtime)")


def dump(model_content: bytes, inputs: list[np.ndarray], path: str = "reference",
         package: str | None = None) -> dict[str, np.ndarray]:
    """Run the model once under LiteRT's `path` and return the .npz contents (see module doc)."""
    if path not in RESOLVERS:
        raise DumpError(f"unknown path {path!r}: one of {', '.join(RESOLVERS)}")
    interpreter_class, resolver_type, build = find_litert(package)
    try:
        it = interpreter_class(model_content=model_content, experimental_preserve_all_tensors=True,
                               experimental_op_resolver_type=getattr(resolver_type, RESOLVERS[path]),
                               num_threads=1)
        it.allocate_tensors()
        details = it.get_input_details()
        if len(details) != len(inputs):
            raise DumpError(f"the model has {len(details)} inputs, {len(inputs)} given")
        for d, value in zip(details, inputs):
            value = np.asarray(value)
            if value.dtype != d["dtype"] or tuple(value.shape) != tuple(d["shape"]):
                raise DumpError(f"input {d['index']} '{d['name']}' needs {np.dtype(d['dtype']).name} "
                                f"{[int(v) for v in d['shape']]}, got {value.dtype.name} {list(value.shape)}")
            it.set_tensor(d["index"], value)
        it.invoke()
    except DumpError:
        raise
    except Exception as e:  # LiteRT's own errors: say which build refused what
        raise DumpError(f"{build} ({path}): {e}") from None
    out: dict[str, np.ndarray] = {}
    for d in it.get_tensor_details():
        try:
            value = it.get_tensor(d["index"])
        except ValueError:  # a tensor LiteRT did not keep (no data)
            continue
        out[f"tensor_{d['index']}"] = np.array(value, copy=True)
    out["__build__"] = np.array(build)
    out["__path__"] = np.array(path)
    out["__model_sha256__"] = np.array(hashlib.sha256(model_content).hexdigest())
    out["__outputs__"] = np.array(json.dumps([d["index"] for d in it.get_output_details()]))
    return out


def load_inputs(path: str) -> list[np.ndarray]:
    """One input from a .npy, or several from a .npz (in the order of its names, x0, x1, ...)."""
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DumpError(f"{path}: not a readable .npy/.npz file ({e})") from None
    if isinstance(data, np.ndarray):
        return [data]
    return [data[k] for k in data.files]


def serve(package: str | None = None) -> int:
    """Dump many models in one process (a host drives it: refnet.litert.BuildRunner). Each stdin
    line is MODEL<TAB>INPUT<TAB>OUT<TAB>PATH; each answer line is "ok" or "error: why"."""
    for line in sys.stdin:
        model, inputs, out, path = line.rstrip("\n").split("\t")
        try:
            with open(model, "rb") as f:
                content = f.read()
            np.savez(out, **dump(content, load_inputs(inputs), path, package))
            print("ok", flush=True)
        except (DumpError, OSError) as e:
            print(f"error: {e}", flush=True)
    return 0


def main(argv=None) -> int:
    if argv is None and sys.argv[1:2] == ["--serve"]:
        return serve(sys.argv[3] if sys.argv[2:3] == ["--package"] else None)
    p = argparse.ArgumentParser(
        prog="refnet dump", description="Run MODEL once under a LiteRT path and save every tensor it "
        "kept (needs NumPy and ai-edge-litert, tflite-runtime or TensorFlow; no refnet kernels).")
    p.add_argument("model", help=".tflite model")
    p.add_argument("--input", required=True, help=".npy (one input) or .npz (several) with the exact "
                   "dtype and shape the model takes")
    p.add_argument("--out", required=True, help="the .npz to write")
    p.add_argument("--path", default="reference", choices=sorted(RESOLVERS),
                   help="LiteRT path: reference (BUILTIN_REF), optimized, xnnpack (default reference)")
    p.add_argument("--package", choices=[d for _, d in PACKAGES], help="which LiteRT package (default: "
                   "the first found)")
    args = p.parse_args(argv)
    try:
        with open(args.model, "rb") as f:
            content = f.read()
    except OSError as e:
        print(f"refnet dump: error: {args.model}: {e.strerror}", file=sys.stderr)
        return 2
    try:
        result = dump(content, load_inputs(args.input), args.path, args.package)
        np.savez(args.out, **result)
    except DumpError as e:
        print(f"refnet dump: error: {args.model}: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"refnet dump: error: {args.out}: {e.strerror}", file=sys.stderr)
        return 2
    kept = sum(k.startswith("tensor_") for k in result)
    print(f"{args.out}: {kept} tensors of {args.model} under {result['__build__']} ({args.path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
