"""refnet's model commands: `refnet info` (MACs/params of an architecture, or a table of any
.tflite model) and `refnet convert` (Keras .h5 / TF-slim checkpoint / .tflite -> weight store).

  refnet info --arch NAME [--depth-multiplier DM] [--resolution R] [--num-classes N]
              [--finegrain] [--layers] [--json]
  refnet info --seed-table [--json]
  refnet info MODEL.tflite|STORE.h5 [--json]
  refnet convert SRC DST.h5 [--arch NAME --depth-multiplier DM --resolution R ...]
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .cli_format import print_table
from .errors import RefnetError


def _spec_from_args(args):
    from .models import ArchSpec
    fg = {"auto": None, "on": True, "off": False}[args.finegrain]
    return ArchSpec(args.arch, float(args.depth_multiplier), int(args.resolution or 224),
                    int(args.num_classes), fg)


# --- info on a .tflite model ------------------------------------------------------------------

def op_macs_params(graph, op) -> tuple[int, int]:
    """MACs and weight/bias parameters of one op of a Graph (conv, depthwise, fully connected;
    0 for everything else), the same convention as refnet.models.counting."""
    t = graph.tensors
    if op.kind not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"):
        return 0, 0
    params = sum(int(np.prod(t[i].shape)) for i in op.inputs[1:3] if i >= 0 and t[i].is_constant)
    out = t[op.outputs[0]].shape
    w = t[op.inputs[1]].shape
    n_out = int(np.prod(out))
    if op.kind == "CONV_2D":
        macs = n_out * int(np.prod(w[1:]))  # OHWI: kh * kw * cin per output element
    elif op.kind == "DEPTHWISE_CONV_2D":
        macs = n_out * w[1] * w[2]
    elif op.kind == "FULLY_CONNECTED":
        macs = n_out * w[-1]
    else:
        macs = int(np.prod(t[op.inputs[2]].shape)) * w[1] * w[2] * w[0]
    return int(macs), int(params)


def _quant_str(tensor) -> str:
    q = tensor.quantization
    if q is None:
        return ""
    if q.per_channel:
        return f"per-channel({q.scale.size}, axis {q.axis})"
    s, z = q.scalar()
    return f"{s:.6g}, zp {z}"


def tflite_info(graph) -> dict:
    rows = []
    for op in graph.ops:
        macs, params = op_macs_params(graph, op)
        ins = [graph.tensors[i] for i in op.inputs if i >= 0 and not graph.tensors[i].is_constant]
        out = graph.tensors[op.outputs[0]]
        name = op.custom_code if op.kind == "CUSTOM" and op.custom_code else op.kind
        rows.append(dict(index=op.index, op=name,
                         inputs=[list(t.shape) for t in ins], output=list(out.shape),
                         dtype=np.dtype(out.dtype).name, quantization=_quant_str(out),
                         macs=macs, params=params, name=out.name))
    def io(i: int) -> dict:
        t = graph.tensors[i]
        q = t.quantization
        return dict(index=i, name=t.name, dtype=np.dtype(t.dtype).name, shape=list(t.shape),
                    scale=None if q is None or q.per_channel else float(q.scale[0]),
                    zero_point=None if q is None or q.per_channel else int(q.zero_point[0]))
    return {"model": graph.source, "inputs": [io(i) for i in graph.inputs], "outputs": [io(i) for i in graph.outputs],
            "ops": rows, "macs": sum(r["macs"] for r in rows), "params": sum(r["params"] for r in rows),
            "custom_ops": [custom_op_info(op) for op in graph.ops if op.kind == "CUSTOM"]}


def custom_op_info(op) -> dict:
    """A custom op's name and options (its flexbuffer map decoded, else the raw size)."""
    from flatbuffers import flexbuffers

    raw = bytes(op.options.get("custom_options", b""))
    try:
        options = flexbuffers.Loads(raw) if raw else {}
        options = options if isinstance(options, dict) else {"value": options}
    except Exception:  # not a flexbuffer (Edge TPU ops carry their own format)
        options = {"bytes": len(raw)}
    return {"index": op.index, "name": op.custom_code, "options": options}


def _io_line(role: str, t: dict) -> str:
    """One model input or output, as a user feeds or reads it."""
    line = f"{role} {t['index']} '{t['name']}': {t['dtype']} {'x'.join(map(str, t['shape']))}"
    if t["scale"] is not None:
        line += (f", scale {t['scale']:.9g}, zero point {t['zero_point']} "
                 f"(real value = {t['scale']:.6g} * (q - {t['zero_point']}))")
    return line


# --- commands ---------------------------------------------------------------------------------

def cmd_info(args) -> int:
    if args.seed_table:
        from .models.seed_table import format_table, table
        rows = table()
        if args.json:
            print(json.dumps(rows, indent=1))
        else:
            print(format_table(rows))
            for r in rows:
                if r["note"]:
                    print(f"\n{r['checkpoint']}: {r['note']}")
        return 0
    if args.arch:
        from .models import count, get_net
        from .models.counting import layer_counts
        spec = _spec_from_args(args)
        net = get_net(spec)
        c = count(net)
        info = {"arch": args.arch, "depth_multiplier": spec.depth_multiplier,
                "resolution": spec.resolution, "num_classes": spec.num_classes,
                "finegrain_classification_mode": spec.finegrain_classification_mode, **c}
        if args.layers:
            info["layers"] = [dict(name=l.name, kind=l.kind, output=list(l.out_shape),
                                   macs=r.macs, params=r.params)
                              for l, r in zip(net.layers, layer_counts(net))]
        if args.json:
            print(json.dumps(info, indent=1))
            return 0
        print(f"{args.arch}  depth multiplier {args.depth_multiplier}  resolution "
              f"{args.resolution}  classes {args.num_classes}"
              f"{'  (finegrain)' if spec.finegrain_classification_mode else ''}")
        if args.layers:
            print_table(["layer", "kind", "output", "MACs", "params"],
                         [[l["name"], l["kind"], "x".join(map(str, l["output"])), l["macs"],
                           l["params"]] for l in info["layers"]])
            print()
        print(f"MACs    {c['macs']:>12,d}  ({c['macs'] / 1e6:.2f} M)")
        print(f"params  {c['params']:>12,d}  ({c['params'] / 1e6:.3f} M: weights + biases, the "
              f"TF-slim README's convention)")
        print(f"        {c['params_folded']:>12,d}  after batch-norm folding (inference model)")
        print(f"        {c['params_checkpoint']:>12,d}  every checkpoint variable (with batch norm)")
        return 0
    if not args.model:
        raise RefnetError("refnet info: give --arch NAME, --seed-table, or a model file")
    from .model_files import is_weight_store, load_model

    path = Path(args.model)
    if not path.exists() and not Path(str(path) + ".index").exists():
        raise RefnetError(f"{args.model}: no such file")
    if is_weight_store(path, args.model):
        from .weights_store import read_store
        store = read_store(path)
        from .models import count, get_net
        c = count(get_net(store.spec))
        info = {"store": str(path), "spec": store.spec.to_dict(), "provenance": store.provenance,
                "tensors": len(store.tensors), **c}
        print(json.dumps(info, indent=1, default=str))
        return 0
    loaded = load_model(args.model)
    _resolve_dynamic_shapes(loaded.graph)
    info = tflite_info(loaded.graph)
    if loaded.note:
        info["imported"] = loaded.note
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    if loaded.note:
        print(loaded.note)
    for role, key in (("input", "inputs"), ("output", "outputs")):
        for t in info[key]:
            print(_io_line(role, t))
    print()
    print_table(["#", "op", "inputs", "output", "dtype", "quantization", "MACs", "params"],
                 [[r["index"], r["op"], " ".join("x".join(map(str, s)) for s in r["inputs"]),
                   "x".join(map(str, r["output"])), r["dtype"], r["quantization"], r["macs"],
                   r["params"]] for r in info["ops"]])
    print(f"\ntotal: {info['macs']:,d} MACs ({info['macs'] / 1e6:.2f} M), "
          f"{info['params']:,d} params ({info['params'] / 1e6:.3f} M)")
    for c in info["custom_ops"]:
        options = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in c["options"].items())
        print(f"custom op {c['index']} {c['name']}: {options or 'no options'}")
    return 0


def _resolve_dynamic_shapes(graph) -> None:
    """Outputs a converter left unsized (e.g. TFLite_Detection_PostProcess's) get the shapes their
    op gives them when prepared; a model refnet cannot prepare keeps the declared shapes."""
    from .interpreter import Interpreter

    if not any(graph.tensors[t].shape == () for op in graph.ops if op.kind == "CUSTOM" for t in op.outputs):
        return
    try:
        Interpreter(graph=graph).allocate_tensors()
    except RefnetError:
        pass


def cmd_convert(args) -> int:
    from .importers import import_checkpoint
    from .weights_store import write_store
    spec = _spec_from_args(args) if args.arch else None
    # weights do not fix the input resolution: a source that records none takes --resolution
    if (args.dst is None) == (args.to_tflite is None):
        raise RefnetError("refnet convert SRC needs DST.h5 (a weight store) or --to-tflite OUT.tflite")
    out = Path(args.to_tflite or args.dst)
    if not out.resolve().parent.is_dir():
        raise RefnetError(f"{args.to_tflite or args.dst}: the directory {out.parent} does not exist")
    keras_config = None
    if getattr(args, "keras_config", None):
        import json
        try:
            keras_config = json.loads(Path(args.keras_config).read_text())
        except OSError as e:
            raise RefnetError(f"--keras-config {args.keras_config}: {e.strerror}") from None
        except ValueError as e:
            raise RefnetError(f"--keras-config {args.keras_config}: not JSON ({e})") from None
        if not isinstance(keras_config, dict) or "config" not in keras_config:
            raise RefnetError(f"--keras-config {args.keras_config}: not a Keras model config "
                              f"(write one with open('model.json', 'w').write(model.to_json()))")
    store = import_checkpoint(args.src, spec=spec, resolution=args.resolution, keras_config=keras_config)
    if args.to_tflite:  # the float32 graph as LiteRT runs it (refnet verify compares the two)
        from .tflite_writer import write_tflite

        out.write_bytes(write_tflite(store.graph(source=args.src)))
    else:
        write_store(out, store)
    print(f"{args.src} -> {out}: {store.spec.arch} dm={store.spec.depth_multiplier} "
          f"res={store.spec.resolution}, {len(store.tensors)} tensors")
    notes = store.provenance.get("notes", "")
    if "resolution not recorded" in notes:
        print(f"note: {notes.split('; ')[-1]}")
    return 0


def _arch_args(p, required=False):
    from .models import FAMILIES
    p.add_argument("--arch", choices=sorted(FAMILIES), required=required,
                   help="architecture (the seed's definitions)")
    p.add_argument("--depth-multiplier", "--dm", type=float, default=1.0,
                   help="depth (width) multiplier, default 1.0")
    p.add_argument("--resolution", type=int, default=224, help="input resolution, default 224")
    p.add_argument("--num-classes", type=int, default=1001,
                   help="classes (default 1001, as the seed's checkpoints)")
    p.add_argument("--finegrain", choices=("auto", "on", "off"), default="auto",
                   help="fine-grain classification mode: keep the last layer full width for "
                        "dm < 1; auto (default) = on when dm < 1, as every seed checkpoint and "
                        "keras.applications")


def add_commands(sub) -> None:
    info = sub.add_parser(
        "info", help="MACs and params of an architecture, or a table of a model file",
        description="With --arch: MACs and parameters of a MobileNet variant (counted as the "
                    "TF-slim MobileNet README counts them, see refnet.models.counting). With a "
                    ".tflite file: its inputs and outputs (dtype, shape, scale, zero point), then "
                    "every op with shapes, dtypes, quantization, MACs and params. With a weight "
                    "store (.h5): its architecture and provenance. --seed-table: the table of "
                    "checkpoints published in the TF-slim MobileNet README (MACs, params, top-1) "
                    "against refnet's counts.")
    info.add_argument("model", nargs="?", help=".tflite model, Keras .h5 / .weights.h5, TF-slim checkpoint "
                                               "prefix or refnet weight store (told by its contents)")
    _arch_args(info)
    info.add_argument("--layers", action="store_true", help="with --arch: per-layer table")
    info.add_argument("--seed-table", action="store_true",
                      help="the TF-slim MobileNet README's published table (30 checkpoints) "
                           "against refnet's counts")
    info.add_argument("--json", action="store_true", help="JSON output")
    info.set_defaults(func=cmd_info)

    conv = sub.add_parser(
        "convert", help="import a checkpoint into refnet's weight store (.h5) or a .tflite",
        description="Import SRC (a Keras .keras / .h5 / .weights.h5 of a keras.applications MobileNet "
                    "V1/V2/V3, as it is or fine-tuned under a head; a TF-slim checkpoint prefix or "
                    ".index file; or a float .tflite) and write DST, refnet's HDF5 weight store (batch "
                    "norm folded), or --to-tflite. The architecture is read from the saved config or "
                    "inferred from the tensor names and shapes; --arch and friends override, and "
                    "--keras-config gives a fine-tuned model's .weights.h5 its model.")
    conv.add_argument("src", help="the checkpoint (.keras, .h5, .weights.h5, TF-slim prefix, float .tflite)")
    conv.add_argument("dst", nargs="?", help="refnet's weight store to write (.h5)")
    conv.add_argument("--to-tflite", metavar="OUT", help="write the float32 model as a .tflite that LiteRT "
                                                          "runs, instead of a weight store")
    conv.add_argument("--keras-config", metavar="JSON",
                      help="for a weights-only Keras file (.weights.h5, save_weights): the model's "
                           "config, as written by open('model.json', 'w').write(model.to_json())")
    _arch_args(conv)
    conv.set_defaults(func=cmd_convert, resolution=None)
