"""refnet's command line.

  refnet run [MODEL] [--image IMG] [--labels FILE]   top-5, and every tensor checked against
                                                      LiteRT's reference kernels when installed
"""
from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path

import numpy as np

from . import Interpreter, RefnetError, __version__
from .cli_format import print_table
from .images import PREPROCESS, image_input
from .model_outputs import class_map_rows, headline, is_class_map, is_keypoints, keypoint_rows

DEFAULT_MODEL_NAME = "default_model.tflite"


def default_model_path() -> Path:
    return Path(str(resources.files("refnet") / "data" / DEFAULT_MODEL_NAME))


FIRST_RUN_MODEL = "mobilenet_v2_1.0_224_quant.tflite"  # shipped in refnet/data with its LICENSE
FIRST_RUN_IMAGE, FIRST_RUN_LABELS = "cat.bmp", "imagenet_labels.txt"


def _data_file(name: str) -> Path:
    return Path(str(resources.files("refnet") / "data" / name))


def _read_model(path_as_typed: str):
    """The model (refnet.model_files.LoadedModel: .tflite bytes and graph; a checkpoint is imported
    and written as .tflite, which LiteRT then runs); errors name the file as the user typed it."""
    from .model_files import load_model

    loaded = load_model(path_as_typed)
    if loaded.note:
        print(loaded.note)
    return loaded


def _show_progress(args) -> bool:
    """Progress bars on a terminal (stderr), or when asked with --progress; never with --quiet."""
    if getattr(args, "quiet", False):
        return False
    return bool(getattr(args, "progress", False)) or sys.stderr.isatty()


def _top1(raw: np.ndarray, detail: dict, labels) -> tuple[str, str]:
    """(label, score) of the top class of a classifier output, as printed by run."""
    from .verify import top_class

    top = top_class(raw, detail)
    if top is None:
        return "-", "-"
    c = top[0]
    return (labels[c] if labels and c < len(labels) else str(c)), str(raw[0][c])


def cmd_run(args) -> int:
    first_run = args.model is None
    model = _data_file(FIRST_RUN_MODEL) if first_run else Path(args.model)
    if first_run:
        args.image = args.image or str(_data_file(FIRST_RUN_IMAGE))
        args.labels = args.labels or str(_data_file(FIRST_RUN_LABELS))
        print(f"refnet {__version__}: no model given, so a real one shipped with refnet: MobileNetV2 1.0 224 "
              f"uint8 (Coral's quantized checkpoint, Apache-2.0) on a photo of a cat")
    labels = None
    if args.labels:
        try:
            labels = Path(args.labels).read_text().splitlines()
        except OSError as e:
            raise RefnetError(f"--labels {args.labels}: {e.strerror}") from None
    loaded = _read_model(args.model or str(model))
    content = loaded.content
    it = Interpreter(graph=loaded.graph, experimental_preserve_all_tensors=True, profile=args.profile)
    it.allocate_tensors()
    inputs = []
    for detail in it.get_input_details():
        x = image_input(args.image, detail, float_pixels=loaded.float_pixels)
        it.set_tensor(detail["index"], x)
        inputs.append(x)
    print(f"model  {model}  ({len(it.graph.ops)} ops, {len(it.graph.tensors)} tensors)")
    print(f"input  {args.image or 'synthetic test pattern (no --image given)'}")
    it.invoke()
    out_detail = it.get_output_details()[0]
    raw = it.get_tensor(out_detail["index"])
    detections = _detections(it, labels)
    if detections is not None:
        print(f"\nrefnet, {it.profile.name}: {len(detections)} detection(s)")
        if detections:
            print_table(["#", "class", "label", "score", "box (ymin, xmin, ymax, xmax)"], detections)
    elif is_keypoints(raw):
        print(f"\nrefnet, {it.profile.name}: {raw.shape[2]} keypoints (y, x as fractions of the image)")
        print_table(["#", "keypoint", "y", "x", "score"], keypoint_rows(raw))
    elif is_class_map(raw):
        rows = class_map_rows(raw, labels)
        print(f"\nrefnet, {it.profile.name}: a class per pixel ({raw.shape[1]}x{raw.shape[2]}), "
              f"{len(rows)} class(es) present")
        print_table(["class", "label", "pixels", "share"], rows[:args.top])
    elif raw.ndim == 2 and raw.shape[0] >= 1 and raw.shape[1] > 1:
        scores = raw[0]
        from .verify import dequantized

        real = dequantized(scores, out_detail)
        top = np.argsort(-real, kind="stable")[:args.top]
        rows = [[rank + 1, int(c), labels[c] if labels and c < len(labels) else "", scores[c],
                 f"{real[c]:.4f}"] for rank, c in enumerate(top)]
        print(f"\nrefnet, {it.profile.name}:")
        print_table(["rank", "class", "label", f"raw ({scores.dtype.name})", "score"], rows)
    else:
        print(f"\noutput '{out_detail['name']}': shape {list(raw.shape)} {raw.dtype.name}")
    if args.no_compare:
        return 0
    return _compare_with_litert_paths(content, inputs, labels, out_detail, str(model))


def _detections(it, labels) -> list | None:
    """An SSD detector's detections (TFLite_Detection_PostProcess's outputs), or None."""
    g = it.graph
    post = [op for op in g.ops if op.kind == "CUSTOM" and op.custom_code == "TFLite_Detection_PostProcess"]
    if not post:
        return None
    boxes, classes, scores, count = (it.get_tensor(t) for t in post[-1].outputs)
    per_det = boxes.shape[1] // max(classes.shape[1], 1)
    rows = []
    for k in range(int(count[0]) * max(per_det, 1) if per_det else int(count[0])):
        if k >= classes.shape[1]:
            break
        c = int(classes[0, k])
        rows.append([k + 1, c, labels[c] if labels and 0 <= c < len(labels) else "", f"{scores[0, k]:.4f}",
                     ", ".join(f"{v:.3f}" for v in boxes[0, k])])
    return rows


def _compare_with_litert_paths(content: bytes, inputs: list, labels, out_detail: dict, model: str) -> int:
    """LiteRT's three CPU paths: each one's top-1, and whether refnet's profile for that build
    and path gives the same bytes on every tensor (the three answers, each explained)."""
    from .litert import LiteRTCrashed, INSTALL_HINT, compare_tensors, litert_available, run_litert
    from .profile import PATHS, installed_build, resolve_id

    print()
    if not litert_available():
        print(f"not compared with LiteRT: {INSTALL_HINT}")
        return 0
    rows, differs, unmodelled = [], False, []
    for path in PATHS:
        try:
            theirs = run_litert(content, inputs, path=path, isolated=True)
        except LiteRTCrashed as e:
            rows.append([path, "-", "-", f"LiteRT crashed ({e})"])
            continue
        profile = resolve_id(path)
        ours_it = Interpreter(model_content=content, experimental_preserve_all_tensors=True, profile=profile)
        ours_it.allocate_tensors()
        for detail, x in zip(ours_it.get_input_details(), inputs):
            ours_it.set_tensor(detail["index"], x)
        ours_it.invoke()
        ours = {t.index: ours_it.get_tensor(t.index) for t in ours_it.graph.tensors}
        compared = compare_tensors(ours_it.graph, ours, theirs)
        bad = [r for r in compared if not r.equal]
        post = [op for op in ours_it.graph.ops if op.custom_code == "TFLite_Detection_PostProcess"]
        if post and all(t in theirs for t in post[-1].outputs):  # a detector: its best detection
            _, classes, scores, count = (theirs[t] for t in post[-1].outputs)
            label, score = (str(int(classes[0, 0])), f"{scores[0, 0]:.4f}") if count[0] >= 1 else ("none", "-")
        else:
            their_output = theirs.get(out_detail["index"], np.zeros((0,)))
            label, score = headline(their_output, labels) or _top1(their_output, out_detail, labels)
        float_only = bad and all(ours_it.graph.tensors[r.index].dtype == np.float32 and r.max_ulp is not None
                                 and r.max_ulp >= 0 for r in bad)
        if bad and float_only and path != "reference":
            # refnet's float32 golden answer is the reference order; these kernels sum in blocks
            unmodelled.append(path)
            verdict = (f"{len(bad)}/{len(compared)} float32 tensors within {max(r.max_ulp for r in bad)} ULP of "
                       f"refnet's {profile} (LiteRT's {path} float kernels sum in an order refnet does not model)")
        elif bad:
            differs = True
            verdict = f"{len(bad)}/{len(compared)} tensors differ from refnet's {profile} (first: tensor {bad[0].index})"
        else:
            verdict = f"bit-exact with refnet's {profile} ({len(compared)}/{len(compared)} tensors)"
        rows.append([path, label[:28], score, verdict])
    print(f"LiteRT {installed_build() or ''}, each CPU path (reference = BUILTIN_REF, optimized = "
          f"BUILTIN_WITHOUT_DEFAULT_DELEGATES, xnnpack = BUILTIN):")
    print_table(["path", "top-1" if headline(ours[out_detail["index"]], labels) is None else "headline", "score",
                 "every tensor"], rows)
    if not differs:
        answers = {row[2] for row in rows}
        exact = [p for p in PATHS if p not in unmodelled]
        how = (f"each reproduced bit for bit" if not unmodelled else
               f"{', '.join(exact)} reproduced bit for bit, {', '.join(unmodelled)} within the ULP shown")
        print(("One runtime, different answers, " if len(answers) > 1 else "Every path agrees, ") + how +
              f": refnet verify {model} --isolated says where the paths part and why; "
              f"refnet profiles lists the builds refnet knows.")
    return 1 if differs else 0


def _verify_inputs(args, interp, float_pixels: bool = False) -> tuple[list[list], list[str]]:
    """Input sets for verify: images from --image, or --random N, or the test pattern."""
    details = interp.get_input_details()
    files = [Path(f) for f in (args.image or [])]
    sets, names = [], []
    for f in files:
        sets.append([image_input(f, d, float_pixels=float_pixels) for d in details])
        names.append(f.name)
    rng = np.random.default_rng(args.seed)
    for k in range(args.random):
        one = []
        for d in details:
            dtype = np.dtype(d["dtype"])
            if dtype.kind == "f":
                one.append(rng.uniform(-1, 1, size=d["shape"]).astype(dtype))
            else:
                info = np.iinfo(dtype)
                one.append(rng.integers(info.min, int(info.max) + 1, size=d["shape"]).astype(dtype))
        sets.append(one)
        names.append(f"random#{k}")
    if not sets:
        sets.append([image_input(None, d, float_pixels=float_pixels) for d in details])
        names.append("synthetic test pattern")
    return sets, names


COLUMN_LEGEND = ("first at: the first differing element (coordinates); steps: max |difference| in quantized "
                 "steps; real: the same in real units; ulp: max float32 distance in units in the last place; "
                 "cause (--isolated): the arithmetic that reproduces LiteRT's bits")


def _top1_line(r) -> str | None:
    """'top-1 ...' for a classifier: LiteRT's on this path, against refnet's reference."""
    if not r.top1:
        return None
    pairs = [(t, ref) for t, ref in zip(r.top1, r.top1_reference) if t is not None]
    if len(pairs) == 1:
        (c, score), (rc, rscore) = pairs[0]
        same = "same class" if c == rc else "a DIFFERENT class"
        return f"top-1: class {c}, score {score:g} (refnet reference: class {rc}, score {rscore:g}; {same})"
    agree = sum(t[0] == ref[0] for t, ref in pairs)
    return f"top-1 class equal to refnet reference's on {agree}/{len(pairs)} inputs"


def _explain_command(r, model: str, sources: list) -> str | None:
    """A ready `refnet explain` for the first divergent op's first differing element."""
    row = next((row for row in r.rows if not row.equal and row.first_mismatch is not None), None)
    from .explain import EXPLAINERS

    if row is None or row.kind not in EXPLAINERS:
        return None
    source = sources[row.first_input] if row.first_input is not None and row.first_input < len(sources) else None
    if source is None:
        return f"(op {row.op} first differs on a random input; explain takes images: rerun with --image)"
    at = ",".join(map(str, row.first_mismatch))
    image = f" --image {source}" if source else ""
    ours = r.refnet_profile or r.path
    command = f"refnet explain {model} --op {row.op} --at {at}{image} --profile {ours}"
    if ours != r.path:  # refnet ran another arithmetic than this path's: show both
        command += f"   (LiteRT {r.path}'s arithmetic: --profile {r.path})"
    return command


def _print_path_report(r, verbose: bool, model: str = "MODEL", sources: list | None = None) -> None:
    """One verify.PathReport: a summary line, top-1, and a table of the divergent ops (all with -v)."""
    print(f"\n== {r.path} ({r.mode}): ", end="")
    if r.error:
        print(r.error)
        return
    first = r.first_divergent_op
    print(f"{r.tensors_equal}/{r.tensors_compared} op outputs bit-exact"
          + ("" if first is None else f"; first divergent op: {first}"))
    if r.note:
        print(f"   ({r.note})")
    top = _top1_line(r)
    if top:
        print(f"   {top}")
    rows = [row for row in r.rows if verbose or not row.equal]
    if not rows:
        return
    table = []
    for row in rows:
        mark = "<- first" if row.op == first and not row.equal else ""
        at = "" if row.first_mismatch is None else ",".join(map(str, row.first_mismatch))
        table.append([row.op, row.kind, row.tensor, row.name[:40], f"{row.mismatched}/{row.total}", at,
                      f"{row.max_diff_steps:g}", f"{row.max_diff_real:.3g}", row.max_ulp,
                      (row.cause or "")[:110], mark])
    print_table(["op", "kind", "tensor", "name", "mismatched", "first at", "steps", "real", "ulp", "cause", ""],
                table)
    if any(not row.equal for row in rows):
        print(f"   ({COLUMN_LEGEND})")
        command = _explain_command(r, model, sources or [])
        if command:
            print(f"   the first difference, step by step: {command}")


def cmd_verify(args) -> int:
    model = Path(args.model)
    for option, out in (("--json", args.json), ("--html", args.html), ("--model-explorer", args.model_explorer)):
        if out and out != "-" and not Path(out).resolve().parent.is_dir():  # before any work starts
            raise RefnetError(f"{option} {out}: the directory {Path(out).parent} does not exist")
    if args.json == "-":  # the JSON is the output: everything else goes to stderr
        import contextlib

        with contextlib.redirect_stdout(sys.stderr):
            code, report = _verify(args, model)
        if report is not None:
            print(json.dumps(report, indent=1))
        return code
    return _verify(args, model)[0]


def _verify(args, model: Path) -> tuple[int, dict | None]:
    """cmd_verify's work: (exit code, the JSON report or None when nothing was compared)."""
    from .errors import EdgeTpuOpError
    from .litert import INSTALL_HINT, LITERT_RESOLVERS, LiteRTCrashed, litert_available, run_litert
    from .report import model_explorer_node_data, report_to_html, report_to_json
    from .verify import verify_path

    loaded = _read_model(args.model)
    content, graph = _cut_if_needed(args, loaded.content, loaded.graph)
    if args.images or args.image_list:
        Interpreter(graph=graph)  # an Edge TPU or unsupported model: its typed error, before any work
        from .cli_dataset import verify_dataset

        return verify_dataset(args, content, graph, loaded.float_pixels)
    for option in ("jobs", "resume", "results", "address"):
        if getattr(args, option) not in (None, False, 1):
            raise RefnetError(f"--{option} is for a dataset: give --images DIR or --image-list FILE")
    try:
        interp = Interpreter(graph=graph, experimental_preserve_all_tensors=True)
    except EdgeTpuOpError as e:
        print(f"{model}: {str(e).split(': ', 1)[-1]}")
        if not args.source:
            print("\nNothing refnet can verify in this file: give the CPU model the Edge TPU compiler "
                  "consumed with --source MODEL.tflite.")
            return 2, None
        _check_source_matches(graph, args.source)
        print(f"\nVerifying the source model instead: {args.source}")
        args.model, args.source = args.source, None
        return _verify(args, Path(args.model))
    if args.source:
        raise RefnetError(f"--source {args.source}: {args.model} is not an Edge TPU model; --source "
                          f"names the CPU model an Edge TPU model was compiled from")
    interp.allocate_tensors()  # a model refnet refuses at prepare: its typed error before LiteRT runs
    from tqdm import tqdm

    if args.against_dump:
        inputs, names, paths, litert_outputs, profile = _dump_as_litert(args, content)
        args.profile = args.profile or profile
    else:
        if not litert_available():
            print(f"refnet verify needs LiteRT to compare with: {INSTALL_HINT}", file=sys.stderr)
            return 2, None
        inputs, names = _verify_inputs(args, interp, loaded.float_pixels)
        paths = list(LITERT_RESOLVERS) if args.against == "all" else [args.against]
        litert_outputs = {}
        with tqdm(total=len(paths) * len(inputs), desc="LiteRT", unit="run",
                  disable=not _show_progress(args)) as bar:
            for path in paths:
                outs = []
                for x in inputs:
                    try:
                        outs.append(run_litert(content, x, path=path, isolated=True))
                    except LiteRTCrashed as e:
                        bar.close()
                        print(f"LiteRT's {path} path crashed on this model: {e}", file=sys.stderr)
                        return 2, None
                    bar.update(1)
                litert_outputs[path] = outs
    reports = []
    modes = [False, True] if args.isolated else [False]
    with tqdm(total=len(paths) * len(inputs) * len(modes), desc="refnet", unit="run",
              disable=not _show_progress(args)) as bar:
        for path in paths:
            for isolated in modes:
                reports.append(verify_path(content, inputs, path, isolated, progress=bar,
                                           litert_outputs=litert_outputs[path],
                                           refnet_profile=args.profile, source=interp.graph.source))
    _add_top1(reports, interp, inputs, litert_outputs)
    print(f"model {model}: {len(interp.graph.ops)} ops; inputs: {', '.join(names[:6])}"
          f"{' ...' if len(names) > 6 else ''}")
    sources = _input_sources(args, names)
    for r in reports:
        _print_path_report(r, args.verbose, str(model), sources)
    report = report_to_json(str(model), names, reports)
    if args.json and args.json != "-":
        Path(args.json).write_text(json.dumps(report, indent=1))
        print(f"\nJSON report: {args.json}")
    if args.html:
        Path(args.html).write_text(report_to_html(str(model), names, reports))
        print(f"HTML report: {args.html}")
    if args.model_explorer:
        out = Path(args.model_explorer)
        for r in reports:  # node data colours one graph: one file per path (and mode)
            one = out if len(reports) == 1 else out.with_name(
                f"{out.stem}.{r.path}{'.isolated' if r.mode == 'isolated' else ''}{out.suffix or '.json'}")
            one.write_text(json.dumps(model_explorer_node_data(interp.graph, r), indent=1))
            print(f"Model Explorer node data ({r.path}, {r.mode}): {one}")
        print("   (in Model Explorer: open the model, then 'Add per-node data' with these files)")
    ok = all(r.equal for r in reports)
    print("\nverdict: " + ("every compared tensor is bit-exact" if ok else "DIFFERENCES FOUND"))
    return (0 if ok else 1), report


def _cut_if_needed(args, content: bytes, graph):
    """The model, or (with --until-op N, or when refnet cannot run an op the outputs depend on) a
    copy cut before that op (refnet/model_cut.py): what refnet and LiteRT both run and compare."""
    from .interpreter import is_supported
    from .model_cut import cut_before, first_unsupported_needed
    from .tflite_reader import read_tflite

    if any(op.custom_code == "edgetpu-custom-op" for op in graph.ops):
        return content, graph  # explained, with --source for its CPU model
    at = getattr(args, "until_op", None)
    if at is None:
        at = first_unsupported_needed(graph, is_supported)
        if at is None:
            return content, graph
        op = graph.ops[at]
        why = (f"refnet cannot run op {at} ({op.describe()}); verifying the model up to it")
    else:
        why = f"--until-op {at}"
    cut = cut_before(content, graph, at)
    names = ", ".join(f"{t} '{graph.tensors[t].name}'" for t in cut.outputs[:4]) + \
        (" ..." if len(cut.outputs) > 4 else "")
    print(f"{args.model}: {why}: ops 0..{at - 1} of {len(graph.ops)}, the model cut before op {at} "
          f"(outputs: tensor {names})")
    return cut.content, read_tflite(model_content=cut.content, source=f"{args.model} (cut before op {at})")


def _check_source_matches(compiled, source_path: str) -> None:
    """The Edge TPU compiler keeps a model's inputs and outputs (dtype, shape, quantization): a
    --source model whose interface differs is not the one this model was compiled from."""
    source = _read_model(source_path).graph

    def interface(graph, indexes):
        out = []
        for i in indexes:
            t = graph.tensors[i]
            q = t.quantization.scalar() if t.quantization is not None and not t.quantization.per_channel else None
            out.append((t.dtype.name, list(t.shape), q))
        return out

    for side in ("inputs", "outputs"):
        ours, theirs = interface(compiled, getattr(compiled, side)), interface(source, getattr(source, side))
        if ours != theirs:
            raise RefnetError(f"--source {source_path}: its {side} {theirs} differ from the Edge TPU "
                              f"model's {ours} (dtype, shape, (scale, zero point)): not the model it "
                              f"was compiled from")


def _input_sources(args, names: list[str]) -> list[str | None]:
    """For each input set: the --image argument `refnet explain` takes for it, '' for the synthetic
    pattern, None for inputs explain cannot take (random)."""
    by_name = {Path(f).name: f for f in (args.image or [])}
    return [("" if n == "synthetic test pattern" else by_name.get(n)) for n in names]


def _add_top1(reports, interp, inputs: list, litert_outputs: dict) -> None:
    """Each path report's top-1 per input, (class, raw score): LiteRT's, and refnet's reference."""
    from .verify import run_all_tensors, top_class

    out_index = interp.graph.outputs[0]
    out_t = interp.graph.tensors[out_index]
    if len(out_t.shape) != 2 or out_t.shape[-1] < 2:
        return
    interp.allocate_tensors()
    detail = interp.get_output_details()[0]

    def top(values):
        c, raw, _ = top_class(values, detail)
        return c, raw

    ours = [top(run_all_tensors(interp, x)[out_index]) for x in inputs]
    for r in reports:
        theirs = [litert_outputs[r.path][k].get(out_index) for k in range(len(inputs))]
        r.top1 = [top(t) if t is not None else None for t in theirs]
        r.top1_reference = ours



def _dump_as_litert(args, content: bytes):
    """(inputs, names, [path], {path: [tensors]}, profile id) from a dump made by `refnet dump`."""
    import hashlib

    from .dump import load_inputs
    from .verify import every_tensor_an_output

    if not args.input:
        raise RefnetError("--against-dump needs --input X.npy: the input the dump was made with")
    try:
        data = np.load(args.against_dump, allow_pickle=False)
        build, path = str(data["__build__"]), str(data["__path__"])
        sha = str(data["__model_sha256__"])
    except (OSError, ValueError, KeyError) as e:
        raise RefnetError(f"{args.against_dump}: not a dump made by `refnet dump` ({e})") from None
    known = {hashlib.sha256(content).hexdigest(), hashlib.sha256(every_tensor_an_output(content)).hexdigest()}
    if sha not in known:
        raise RefnetError(f"{args.against_dump} was made from another model than {args.model}")
    tensors = {int(k[7:]): data[k] for k in data.files if k.startswith("tensor_")}
    try:
        inputs = [load_inputs(args.input)]
    except Exception as e:
        raise RefnetError(str(e)) from None
    print(f"dump: {args.against_dump} from {build} ({path}); refnet profile: {args.profile or f'{path}@{build}'}")
    return inputs, [str(args.input)], [path], {path: [tensors]}, f"{path}@{build}"


def cmd_dump(args) -> int:
    import subprocess

    from .verify import every_tensor_an_output

    model = Path(args.model)
    if not model.exists():
        raise RefnetError(f"{model}: no such model file")
    prepared = every_tensor_an_output(model.read_bytes())
    if args.prepare_only:
        Path(args.out).write_bytes(prepared)
        print(f"{args.out}: {model} with every tensor an output; on the device: python dump.py "
              f"{Path(args.out).name} --input x.npy --out tensors.npz (dump.py: {Path(__file__).parent / 'dump.py'})")
        return 0
    if not args.input:
        raise RefnetError("refnet dump needs --input X.npy (or --prepare-only)")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        prepared_path = Path(tmp) / model.name
        prepared_path.write_bytes(prepared)
        cmd = [args.python or sys.executable, str(Path(__file__).parent / "dump.py"), str(prepared_path),
               "--input", args.input, "--out", args.out, "--path", args.path]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "the dump failed"
        raise RefnetError(last.replace("refnet dump: error: ", "").replace(str(prepared_path), str(model)))
    print(proc.stdout.strip().replace(str(prepared_path), str(model)))
    return 0


def cmd_profiles(args) -> int:
    from .profile import PATHS, PROFILES, resolve_id

    import textwrap

    for p in PROFILES.values():
        print(f"{p.name}\n    {p.description}")
        print(textwrap.fill(f"measured: {p.measured}", width=100, initial_indent="    ",
                            subsequent_indent="      "))
    print("\nshort names here: " + ", ".join(f"{p} = {resolve_id(p)}" for p in PATHS))
    return 0


def cmd_explain(args) -> int:
    from .explain import explain

    loaded = _read_model(args.model)
    interp = Interpreter(graph=loaded.graph, experimental_preserve_all_tensors=True, profile=args.profile)
    interp.allocate_tensors()
    for detail in interp.get_input_details():
        interp.set_tensor(detail["index"], image_input(args.image, detail, float_pixels=loaded.float_pixels))
    interp.invoke()
    try:
        at = tuple(int(v) for v in args.at.split(","))
    except ValueError:
        raise RefnetError(f"--at {args.at!r}: give comma-separated integers, e.g. 10,7,3") from None
    print(f"input: {args.image or 'synthetic test pattern'}")
    result = explain(interp, args.op, at)
    print("\n".join(result.lines))
    return 0 if result.matches else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="refnet",
        description="refnet: the golden reference for MobileNet inference. Runs .tflite models "
                    "with LiteRT's reference-kernel arithmetic, bit for bit, without TensorFlow.")
    p.add_argument("--version", action="version", version=f"refnet {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser(
        "run", help="run a model on an image: top-5, and a bit-exact check against LiteRT",
        description="Run MODEL on IMAGE (default: MobileNetV2 1.0 224 uint8 on a photo of a cat, "
                    "shipped with refnet; another model without --image gets a synthetic test "
                    "pattern). Prints the top classes and, when LiteRT is installed, each LiteRT CPU "
                    "path's top-1 and whether every tensor is bit-exact with refnet's profile for "
                    "that build and path. Exit code 1 if any tensor differs, 2 on a user error.")
    run.add_argument("model", nargs="?", help=".tflite model, Keras .h5 / .weights.h5, TF-slim checkpoint prefix "
                                              "or refnet weight store (default: MobileNetV2 1.0 224 uint8, shipped)")
    run.add_argument("--image", help="image file (bmp, jpg, png...), resized to the model's input")
    run.add_argument("--labels", help="text file, one label per line (index 0 first)")
    run.add_argument("--top", type=_positive_int, default=5, help="how many classes to print (default 5)")
    run.add_argument("--no-compare", action="store_true", help="skip the comparison with LiteRT")
    run.add_argument("--profile", default="reference", metavar="ID",
                     help="refnet's arithmetic for the top-5: reference, optimized, xnnpack or an id from "
                          "`refnet profiles` (default reference; the LiteRT comparison always uses each "
                          "path's own profile)")
    run.set_defaults(func=cmd_run)
    from .cli_models import add_commands
    add_commands(sub)

    ver = sub.add_parser(
        "verify", help="op-by-op comparison with LiteRT's reference / optimized / XNNPACK paths",
        description="Run MODEL in refnet under the profile of each LiteRT CPU path and in LiteRT, "
                    "and compare every op's outputs bit for bit. With --image / --random: a table "
                    "per path of the ops that differ. With --images DIR or --image-list FILE: a "
                    "dataset, streamed (--jobs N processes or --engine ray), each image's result "
                    "appended to --results (resumable), and a summary per path: images bit-exact, "
                    "outputs differing, top-1 against the reference, where divergence first appears, "
                    "the worst images. Exit code 0 only if refnet reproduces every compared tensor, "
                    "1 if any differs, 2 on a user error.")
    ver.add_argument("model", help=".tflite model (an Edge TPU model is explained; see --source)")
    ver.add_argument("--image", action="append", help="an image file (repeatable)")
    data = ver.add_argument_group("datasets")
    data.add_argument("--images", metavar="DIR", help="a directory of images: verify the dataset")
    data.add_argument("--image-list", metavar="FILE",
                      help="a text file of image paths, one per line (relative to the file's folder)")
    data.add_argument("--preprocess", choices=PREPROCESS, default="resize",
                      help="resize to the model's input (default), or center-crop 87.5%% then resize; then "
                           "the input's own quantization")
    data.add_argument("--jobs", type=_positive_int, default=None, metavar="N",
                      help="worker processes (default 1); with --engine ray, actors (default: the cluster's CPUs)")
    data.add_argument("--engine", choices=["local", "ray"], default="local",
                      help="local processes (default) or Ray actors")
    data.add_argument("--address", metavar="ADDR",
                      help="with --engine ray: the cluster (e.g. ray://head:10001 or auto); default a local one")
    data.add_argument("--results", metavar="FILE.jsonl",
                      help="append each image's result to this file as it completes (JSON lines)")
    data.add_argument("--resume", action="store_true",
                      help="skip the images already in --results (a killed run loses only those in flight)")
    ver.add_argument("--random", type=int, default=0, metavar="N", help="N random inputs")
    ver.add_argument("--seed", type=int, default=0, help="seed of --random (default 0)")
    ver.add_argument("--against", choices=["reference", "optimized", "xnnpack", "all"],
                     default="reference", help="LiteRT path(s) to compare with (default reference)")
    ver.add_argument("--isolated", action="store_true",
                     help="also run each op on LiteRT's own inputs, charging divergences to the op "
                          "that made them, and name the arithmetic that reproduces LiteRT")
    ver.add_argument("--profile", metavar="ID",
                     help="refnet's arithmetic: reference, optimized, xnnpack or an id such as "
                          "optimized@ai-edge-litert-2.3.0/aarch64 (refnet profiles lists them; default: "
                          "the profile matching each LiteRT path); 'reference' shows where each path "
                          "departs from the reference arithmetic, and with --isolated why")
    ver.add_argument("--against-dump", metavar="NPZ",
                     help="compare with tensors `refnet dump` saved on a device instead of a local LiteRT "
                          "(needs --input; the profile defaults to the dump's PATH@BUILD)")
    ver.add_argument("--input", metavar="NPY", help="the exact input tensor (.npy), as given to refnet dump")
    ver.add_argument("--json", metavar="OUT", help="write the full report as JSON ('-': to stdout, the "
                                                  "human report then goes to stderr)")
    ver.add_argument("--html", metavar="OUT", help="write a self-contained HTML report with a plot")
    ver.add_argument("--model-explorer", metavar="OUT",
                     help="write per-op results as Model Explorer node data (JSON): load it beside the "
                          "model in ai-edge-model-explorer to see where the paths depart on the graph")
    ver.add_argument("--until-op", type=int, metavar="N",
                     help="verify ops 0..N-1 only: a copy of the model cut before op N, whose outputs are "
                          "the tensors those ops hand on (automatic, before the first op refnet cannot run "
                          "that the outputs need, e.g. a vendor's custom op)")
    ver.add_argument("--source", metavar="MODEL",
                     help="for an Edge TPU model: the CPU .tflite the compiler consumed, to verify")
    ver.add_argument("--verbose", "-v", action="store_true", help="list every op, not only divergent ones")
    ver.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    ver.add_argument("--progress", action="store_true",
                     help="progress bars even when stderr is not a terminal (default: only on a terminal)")
    ver.set_defaults(func=cmd_verify)

    exp = sub.add_parser(
        "explain", help="the arithmetic of one output element of an op",
        description="Print, step by step, how one output element of op N was computed, with the "
                    "interpreter's own arithmetic under the profile: the inputs and zero points, "
                    "the int32 accumulator and bias (conv family), the multipliers, the arithmetic "
                    "form and its rounding steps, offset and clamp; then check it against the "
                    "interpreter (exit 0 when it matches). Covers CONV_2D, DEPTHWISE_CONV_2D, "
                    "FULLY_CONNECTED, ADD, MUL, AVERAGE_POOL_2D, MEAN and HARD_SWISH.")
    exp.add_argument("model", help=".tflite model")
    exp.add_argument("--op", type=int, required=True, help="op index (as `refnet verify` lists them)")
    exp.add_argument("--at", required=True, help="output coordinates y,x,c (or b,y,x,c; b,c for FC)")
    exp.add_argument("--image", help="image input (default: the synthetic test pattern)")
    exp.add_argument("--profile", default="reference", metavar="ID",
                     help="arithmetic profile: reference, optimized, xnnpack or an id from `refnet "
                          "profiles` (default reference)")
    exp.set_defaults(func=cmd_explain)

    dmp = sub.add_parser(
        "dump", help="save every tensor a LiteRT build computes (run it on the device)",
        description="Rewrite MODEL so that every tensor is an output (no runtime may reuse its buffer), "
                    "run it once under a LiteRT path and save every tensor to an .npz for `refnet verify "
                    "--against-dump`. --python runs another Python's LiteRT (a venv, an emulated aarch64 "
                    "Python); --prepare-only writes the rewritten model for a device, where refnet/dump.py "
                    "runs alone (NumPy and a LiteRT package only).")
    dmp.add_argument("model", help=".tflite model")
    dmp.add_argument("--input", metavar="NPY", help="the input tensor (.npy, exact dtype and shape)")
    dmp.add_argument("--out", required=True, help="the .npz to write (with --prepare-only: the .tflite)")
    dmp.add_argument("--path", default="reference", choices=["reference", "optimized", "xnnpack"],
                     help="LiteRT path (default reference)")
    dmp.add_argument("--python", help="the Python whose LiteRT runs the model (default this one)")
    dmp.add_argument("--prepare-only", action="store_true", help="only write the rewritten model")
    dmp.set_defaults(func=cmd_dump)

    prf = sub.add_parser("profiles", help="list the measured arithmetic profiles (runtime builds x paths)",
                         description="Every profile id (PATH@DIST-VERSION/ARCH), what it is and which "
                                     "build and corpus measured it.")
    prf.set_defaults(func=cmd_profiles)
    return p


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (argparse turns the ValueError into a one-line error, exit 2)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        args = parser.parse_args(["run"] + list(argv if argv is not None else sys.argv[1:]))
    try:
        code = args.func(args)
        sys.stdout.flush()  # inside the try: a closed pipe surfaces here, not at exit
        return code
    except RefnetError as e:
        print(f"refnet: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (refnet ... | head): stop quietly, as cat does
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
