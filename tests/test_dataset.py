"""Dataset verification (refnet/dataset.py, refnet/cli_dataset.py): the summary folds results in
any order with bounded state; --jobs 2 and Ray give the summary of one process; a killed run
resumed gives the summary of an uninterrupted one; options are checked before any work."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from refnet.cli import main
from refnet.dataset import WORST_KEPT, DatasetSummary, ResultsFile, read_results
from tools import image_variations, model_factory

PATHS = ["reference", "optimized", "xnnpack"]
DATASET_IMAGES = 16


# ------------------------------------------------------------------------------------------
# The summary and the results file, on made-up results
# ------------------------------------------------------------------------------------------

def _result(k: int) -> dict:
    """A made-up per-image result: path optimized departs at op k % 5 on odd images."""
    rng = random.Random(k)
    ref = (k % 7, 0.5 + rng.random() / 4)
    paths = {}
    for path in PATHS:
        differs = path != "reference" and k % 2 == 1
        vs = {"equal": not differs, "tensors_differ": 3 if differs else 0,
              "first_op": (k % 5) if differs else None, "first_kind": "CONV_2D" if differs else None,
              "first_at": [0, 1, 2, 3] if differs else None, "output_equal": not differs,
              "output_max_diff": float(k % 4 + 1) if differs else 0.0,
              "top1": ((k + 1) % 7 if differs and k % 3 == 0 else ref[0], ref[1] + (0.01 if differs else 0))}
        profile = {"id": f"{path}@x", "equal": True, "tensors_differ": 0, "first_op": None, "first_kind": None,
                   "first_at": None, "output_equal": True, "output_max_diff": 0.0}
        paths[path] = {"vs_reference": vs, "profile": profile}
    return {"image": f"img{k:04d}.png", "reference": ref, "paths": paths}


def test_summary_is_the_same_in_any_order():
    results = [_result(k) for k in range(200)] + [{"image": "broken.png", "error": "OSError: bad"}]
    summaries = []
    for seed in range(3):
        order = results[:]
        random.Random(seed).shuffle(order)
        s = DatasetSummary(model="m.tflite", paths=PATHS)
        for r in order:
            s.add(r)
        summaries.append(s.to_json())
    assert summaries[0] == summaries[1] == summaries[2]
    opt = summaries[0]["paths"]["optimized"]
    assert summaries[0]["images"] == 201 and summaries[0]["errors"] == 1
    assert opt["images"] == 200 and opt["bit_exact"] == 100 and opt["output_differs"] == 100
    odd = [k for k in range(200) if k % 2]
    assert opt["top1_equal"] == 200 - sum(1 for k in odd if k % 3 == 0)
    assert opt["first_divergent_op"] == {f"op {j} (CONV_2D)": sum(1 for k in odd if k % 5 == j) for j in (1, 3, 0, 2, 4)}
    # the worst: largest output difference (4.0: k % 4 == 3), the alphabetically first images first
    expected = sorted((k for k in odd), key=lambda k: (-(k % 4 + 1), f"img{k:04d}.png"))[:WORST_KEPT]
    assert [w["image"] for w in opt["worst"]] == [f"img{k:04d}.png" for k in expected]
    assert opt["worst"][0]["explain"].startswith("refnet explain m.tflite --op ")


def test_summary_state_is_bounded():
    s = DatasetSummary(model="m.tflite", paths=PATHS)
    for k in range(3000):
        r = _result(k)
        r["paths"]["xnnpack"]["profile"].update(equal=False, first_op=1, first_kind="ADD")
        s.add(r if k % 10 else {"image": f"bad{k}", "error": "x"})
    for p in s.per_path.values():
        assert len(p.worst) <= WORST_KEPT and len(p.profile_findings) <= WORST_KEPT and len(p.first_ops) <= 5
    assert len(s.errors) <= WORST_KEPT and s.error_count == 300


def test_results_file_resumes_after_a_cut_line(tmp_path):
    path = str(tmp_path / "r.jsonl")
    header = {"model_sha256": "abc", "paths": PATHS, "preprocess": "resize"}
    f = ResultsFile(path, header, resume=False)
    f.append(_result(0))
    f.append(_result(1))
    f.close()
    with open(path, "a") as raw:
        raw.write('{"image": "img0002.png", "refer')  # killed in the middle of a line
    assert [r.get("image") for r in read_results(path)[1:]] == ["img0000.png", "img0001.png"]
    f = ResultsFile(path, header, resume=True)
    f.append(_result(2))
    f.close()
    assert [r.get("image") for r in read_results(path)[1:]] == ["img0000.png", "img0001.png", "img0002.png"]
    from refnet import RefnetError

    with pytest.raises(RefnetError, match="made for another model"):
        ResultsFile(path, {**header, "preprocess": "center-crop"}, resume=True)


# ------------------------------------------------------------------------------------------
# The command, on a real model and generated images
# ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("dataset")
    image_variations.make(DATASET_IMAGES, out / "images", size=128)
    model = model_factory.get_model("v2", "int8", resolution=96)
    return model, out


def _summary(report: dict) -> dict:
    """The summary without what depends on the run (rate, engine, timing)."""
    return {k: v for k, v in report.items() if k not in ("images_per_second", "engine")}


@pytest.fixture(scope="module")
def one_process(dataset):
    model, out = dataset
    report = out / "jobs1.json"
    code = main(["verify", str(model), "--images", str(out / "images"), "--against", "all", "--json",
                 str(report), "--results", str(out / "jobs1.jsonl"), "-q"])
    return code, json.loads(report.read_text())


@pytest.mark.litert
@pytest.mark.shared
def test_dataset_summary_and_exit_code(one_process):
    code, report = one_process
    assert code == 0 and report["images"] == DATASET_IMAGES and report["errors"] == 0
    for path, p in report["paths"].items():
        assert p["profile"]["bit_exact"] == DATASET_IMAGES, (path, p["profile"])  # refnet = LiteRT
    assert report["paths"]["reference"]["bit_exact"] == DATASET_IMAGES
    assert report["paths"]["optimized"]["top1_compared"] == DATASET_IMAGES
    assert report["engine"]["coordinator_peak_rss_mib"] > 0 and report["images_per_second"] > 0


@pytest.mark.litert
@pytest.mark.shared
@pytest.mark.parametrize("engine", ["local", "ray"])
def test_two_workers_give_the_summary_of_one_process(dataset, one_process, engine):
    """--jobs 2 worker processes, and a local Ray cluster of two actors (Ray's ActorPool)."""
    model, out = dataset
    report = out / f"{engine}2.json"
    assert main(["verify", str(model), "--images", str(out / "images"), "--against", "all", "--engine", engine,
                 "--jobs", "2", "--json", str(report), "-q"]) == 0
    got = json.loads(report.read_text())
    assert got["engine"]["engine"] == engine and got["engine"]["jobs"] == 2
    assert _summary(got) == _summary(one_process[1])


@pytest.mark.litert
@pytest.mark.shared
def test_killed_run_resumed_gives_the_uninterrupted_summary(dataset, one_process):
    model, out = dataset
    results, report = out / "killed.jsonl", out / "resumed.json"
    argv = [sys.executable, "-m", "refnet", "verify", str(model), "--images", str(out / "images"),
            "--against", "all", "--results", str(results), "-q"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and len(read_results(str(results))) > 1 + DATASET_IMAGES // 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(read_results(str(results))) - 1
    assert 0 < done_before < DATASET_IMAGES
    assert main(["verify", str(model), "--images", str(out / "images"), "--against", "all", "--results",
                 str(results), "--resume", "--json", str(report), "-q"]) == 0
    got = json.loads(report.read_text())
    assert got["engine"]["resumed"] == done_before and got["engine"]["images_this_run"] == DATASET_IMAGES - done_before
    assert _summary(got) == _summary(one_process[1])
    assert len(read_results(str(results))) - 1 == DATASET_IMAGES  # every image once


@pytest.mark.litert
@pytest.mark.shared
def test_coral_dataset_tells_the_paths_apart(shared_dir, tmp_path, capsys):
    """The real uint8 model on 4 photos: the reference path is the reference on every image; the
    optimized and XNNPACK paths depart from it, and refnet's profiles reproduce them."""
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(str(shared_dir / "images" / n) for n in
                                 ("cat.bmp", "bird.bmp", "owl.jpg", "hot_dog.jpg")) + "\n")
    model = shared_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite"
    page = tmp_path / "summary.html"
    assert main(["verify", str(model), "--image-list", str(listing), "--against", "all", "--json", "-",
                 "--html", str(page), "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    html = page.read_text()
    assert "<table id='summary'>" in html and "where divergence first appears" in html and "<svg" in html
    paths = report["paths"]
    assert paths["reference"]["bit_exact"] == 4 and paths["optimized"]["bit_exact"] == 0
    assert paths["xnnpack"]["first_divergent_op"] == {"op 0 (CONV_2D)": 4}
    assert all(p["profile"]["bit_exact"] == 4 for p in paths.values())
    assert paths["optimized"]["worst"][0]["explain"].startswith(f"refnet explain {model} --op ")


def test_dataset_options_are_checked_first(tmp_path, capsys):
    from refnet.cli import default_model_path

    model = str(default_model_path())
    images = tmp_path / "imgs"
    images.mkdir()
    (images / "a.png").write_bytes(b"")
    cases = [
        (["--images", str(images), "--resume"], "--resume needs --results"),
        (["--images", str(images), "--isolated"], "--isolated works on single inputs"),
        (["--images", str(images), "--address", "auto"], "--address is for --engine ray"),
        (["--images", str(images), "--results", str(tmp_path / "no" / "r.jsonl")], "does not exist"),
        (["--image-list", str(tmp_path / "missing.txt")], "--image-list"),
        (["--images", str(tmp_path / "missing")], "not a directory"),
        (["--jobs", "2"], "--jobs is for a dataset"),
    ]
    for extra, message in cases:
        assert main(["verify", model, *extra, "-q"]) == 2, extra
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and message in err, (extra, err)
