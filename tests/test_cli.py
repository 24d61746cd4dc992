"""The command line: run (embedded default), verify (exit codes, JSON, HTML, Edge TPU), explain."""
import json
import re
import shutil
import subprocess
import sys

import pytest

from refnet.cli import default_model_path, main


@pytest.mark.litert
def test_first_command_shows_the_three_answers(capsys):
    """`refnet run` with no arguments: the real model and photo shipped with refnet, its top-5 with
    labels, then each LiteRT path's top-1 score, each bit-exact with refnet's profile for it."""
    assert default_model_path().exists(), "the factory's default model ships with the package"
    code = main(["run"])
    out = capsys.readouterr().out
    assert "MobileNetV2 1.0 224 uint8" in out and "Egyptian cat" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.split()[:1] in (["reference"], ["optimized"], ["xnnpack"])}
    assert [rows[p][3] for p in ("reference", "optimized", "xnnpack")] == ["191", "188", "194"], out
    for path in ("reference", "optimized", "xnnpack"):
        assert f"bit-exact with refnet's {path}@" in out
    assert "different answers, each reproduced bit for bit" in out
    assert code == 0


def test_no_arguments_runs_the_first_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "shipped with refnet" in out and "Egyptian cat" in out


def test_missing_model_is_a_clear_error(capsys, tmp_path):
    assert main(["run", str(tmp_path / "nope.tflite")]) == 2
    assert "no such model file" in capsys.readouterr().err


@pytest.mark.shared
@pytest.mark.litert
def test_verify_reference_passes_and_writes_reports(shared_dir, tmp_path, capsys):
    model = shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite"
    out_json, out_html = tmp_path / "r.json", tmp_path / "r.html"
    code = main(["verify", str(model), "--image", str(shared_dir / "images" / "cat.bmp"), "--random", "1",
                 "--isolated", "--json", str(out_json), "--html", str(out_html), "-q"])
    assert code == 0
    report = json.loads(out_json.read_text())
    assert report["all_equal"] is True
    for path in report["paths"]:
        assert path["tensors_equal"] == path["tensors_compared"] == 31
    assert "<table id='summary'>" in out_html.read_text()


@pytest.mark.shared
@pytest.mark.litert
def test_verify_exit_code_follows_the_comparison(shared_dir, tmp_path):
    """Against every path: exit 0 exactly when the JSON says every tensor is equal."""
    model = shared_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite"
    out_json = tmp_path / "r.json"
    code = main(["verify", str(model), "--image", str(shared_dir / "images" / "cat.bmp"), "--against", "all",
                 "--isolated", "--json", str(out_json), "-q"])
    report = json.loads(out_json.read_text())
    assert code == (0 if report["all_equal"] else 1)
    by = {(p["path"], p["mode"]): p for p in report["paths"]}
    assert by[("reference", "whole")]["tensors_equal"] == by[("reference", "whole")]["tensors_compared"] == 66
    for p in report["paths"]:
        if p["mode"] == "isolated":
            for op in p["ops"]:
                if op["mismatched"]:
                    assert op["cause"], f"divergent op {op['op']} on {p['path']} has no cause named"


def _chromium() -> str:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "headless Chromium renders the HTML report: .ci/run installs Debian's chromium"
    return chromium


def _render(page, shot, height=1400) -> str:
    """The page as headless Chromium lays it out: a screenshot (PNG) and the DOM after its script ran."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    subprocess.run([_chromium(), *flags, f"--screenshot={shot}", f"--window-size=1400,{height}",
                    page.as_uri()], capture_output=True, timeout=120, check=True)
    return subprocess.run([_chromium(), *flags, "--dump-dom", page.as_uri()], capture_output=True,
                          text=True, timeout=120, check=True).stdout


@pytest.mark.shared
@pytest.mark.litert
def test_verify_html_report_reads_top_down_in_chromium(shared_dir, tmp_path):
    """Summary first (per path: where it departs, why, top-1), then the plot with its legend beside
    the data, the divergent ops, and every op's table collapsed; a screenshot shows the verdicts."""
    from PIL import Image

    from refnet.report import DIFFER_BG, EQUAL_BG

    model = shared_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite"
    page, shot = tmp_path / "r.html", tmp_path / "shot.png"
    assert main(["verify", str(model), "--image", str(shared_dir / "images" / "cat.bmp"), "--against", "all",
                 "--profile", "reference", "--isolated", "--html", str(page), "-q"]) == 1
    dom = _render(page, shot)
    order = [dom.index(f'id="{part}"') for part in ("summary", "plot", "divergent", "all-ops")]
    assert order == sorted(order), order
    summary = dom[order[0]:order[1]]
    assert summary.count("<tr") == 7  # the header and 6 path x mode rows
    assert "departs at op 2 (CONV_2D)" in summary and "departs at op 0 (CONV_2D)" in summary
    assert "double rounding, final shift ties up" in summary  # why: optimized's first divergent op
    assert "class 286, score 188 (refnet reference: 286, 191)" in summary
    assert dom.count("<details>") == 6 and "<details open" not in dom  # every table collapsed
    rect = re.search(r"<rect x=\"(\d+)\" y=\"\d+\" width=\"(\d+)\"", dom)
    legend_x = [float(v) for v in re.findall(r'<text x="([\d.]+)" y="[\d.]+" class="legend"', dom)]
    assert len(legend_x) == 6 and min(legend_x) > int(rect.group(1)) + int(rect.group(2))
    image = Image.open(shot).convert("RGB")
    assert image.size == (1400, 1400)
    top = image.crop((0, 0, 1400, 500)).getcolors(1 << 20)
    colours = {c for _, c in top}
    rgb = lambda h: tuple(int(h[k:k + 2], 16) for k in (1, 3, 5))  # noqa: E731
    assert rgb(EQUAL_BG) in colours and rgb(DIFFER_BG) in colours  # the verdicts, at the top


@pytest.mark.shared
@pytest.mark.litert
def test_verify_html_all_equal_is_one_screen(shared_dir, tmp_path):
    model = shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite"
    page = tmp_path / "r.html"
    assert main(["verify", str(model), "--html", str(page), "-q"]) == 0
    dom = _render(page, tmp_path / "shot.png")
    height = int(re.search(r'data-page-height="(\d+)"', dom).group(1))
    assert height < 1400, height
    assert "31 / 31" in dom and "Every compared tensor is bit-exact on every path." in dom


@pytest.mark.shared
def test_verify_edgetpu_model_explains_and_verifies_source(shared_dir, capsys):
    tpu = shared_dir / "models" / "mobilenet_v1_0.25_128_quant_edgetpu.tflite"
    assert main(["verify", str(tpu), "-q"]) == 2
    out = capsys.readouterr().out
    assert "edgetpu-custom-op" in out and "--source" in out
    src = shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite"
    assert main(["verify", str(tpu), "--source", str(src), "-q"]) == 0
    assert "every compared tensor is bit-exact" in capsys.readouterr().out


@pytest.mark.shared
@pytest.mark.parametrize("op,at", [(0, "5,5,3"), (1, "0,0,0"), (2, "10,7,3"), (63, "0,0,100")])
def test_explain_reproduces_the_interpreter(shared_dir, capsys, op, at):
    model = shared_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite"
    image = shared_dir / "images" / "cat.bmp"
    code = main(["explain", str(model), "--op", str(op), "--at", at, "--image", str(image)])
    out = capsys.readouterr()
    assert code == 0, out.out
    assert "(matches the interpreter)" in out.out
    assert "int32 accumulator" in out.out


@pytest.mark.shared
def test_explain_names_what_it_covers(shared_dir, capsys):
    model = shared_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite"
    assert main(["explain", str(model), "--op", "64", "--at", "0,0"]) == 2
    assert "explain covers" in capsys.readouterr().err


def test_help_explains_every_command():
    out = subprocess.run([sys.executable, "-m", "refnet", "--help"], capture_output=True, text=True).stdout
    for command in ("run", "verify", "explain"):
        assert command in out


@pytest.mark.shared
@pytest.mark.litert
def test_verify_against_reference_arithmetic_names_the_cause(shared_dir, tmp_path):
    """LiteRT's optimized path first departs from the reference at op 2 (a 1x1 conv) on the
    Coral MobileNetV2 and cat.bmp; isolated, the cause is the ties-up final shift."""
    model = shared_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite"
    out_json = tmp_path / "r.json"
    code = main(["verify", str(model), "--image", str(shared_dir / "images" / "cat.bmp"), "--against",
                 "optimized", "--profile", "reference", "--isolated", "--json", str(out_json), "-q"])
    assert code == 1
    paths = {p["mode"]: p for p in json.loads(out_json.read_text())["paths"]}
    assert paths["whole"]["first_divergent_op"] == 2
    op2 = next(o for o in paths["isolated"]["ops"] if o["op"] == 2)
    assert op2["mismatched"] > 0 and op2["max_diff_steps"] == 1
    assert "double rounding, final shift ties up" in op2["cause"]


def test_profiles_lists_every_id_and_a_closed_pipe_is_quiet():
    import subprocess
    import sys

    from refnet.profile import PROFILES

    proc = subprocess.run([sys.executable, "-m", "refnet", "profiles"], capture_output=True, text=True)
    assert proc.returncode == 0
    for profile_id in PROFILES:
        assert f"{profile_id}\n" in proc.stdout
    assert "short names here: reference = reference@" in proc.stdout
    for command in ("profiles", f"info {default_model_path()}"):
        for reader in ("head -1", "true"):  # `true` closes the pipe before anything is read
            shell = subprocess.run(f"{sys.executable} -m refnet {command} | {reader}", shell=True,
                                   capture_output=True, text=True)
            assert shell.returncode == 0 and "Traceback" not in shell.stderr and "BrokenPipe" not in shell.stderr


def test_info_names_the_inputs_and_outputs_with_their_quantization(capsys):
    """What a user must feed and read: dtype, shape, scale and zero point of each model input and
    output (the shipped Coral MobileNetV2: uint8 in at 1/128 around 128, uint8 out at 1/256)."""
    model = default_model_path().parent / "mobilenet_v2_1.0_224_quant.tflite"
    assert main(["info", str(model)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("input 0 'input': uint8 1x224x224x3, scale 0.0078125, zero point 128 "
                      "(real value = 0.0078125 * (q - 128))")
    assert out[1].startswith("output 173 'MobilenetV2/Predictions/Softmax': uint8 1x1001, scale 0.00390625, "
                             "zero point 0")
    assert main(["info", str(model), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["inputs"][0] == {"index": 0, "name": "input", "dtype": "uint8", "shape": [1, 224, 224, 3],
                                 "scale": 0.0078125, "zero_point": 128}


def test_user_errors_are_one_line_and_exit_2(capsys, tmp_path):
    """Checked before any work starts: an output directory that does not exist, a --top below 1,
    a labels file that is not there; each a one-line error naming what the user typed."""
    model = str(default_model_path())
    assert main(["verify", model, "--html", str(tmp_path / "no" / "r.html"), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"--html {tmp_path / 'no' / 'r.html'}" in err and "does not exist" in err
    assert main(["verify", model, "--json", str(tmp_path / "no" / "r.json"), "-q"]) == 2
    assert "--json" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["run", "--top", "-3", "--no-compare"])
    assert stop.value.code == 2 and "must be 1 or more, got -3" in capsys.readouterr().err
    assert main(["run", "--labels", str(tmp_path / "missing.txt"), "--no-compare"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "missing.txt" in err
    assert main(["explain", model, "--op", "3", "--at", "10,7"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--at 10,7: the output is 4-D" in err and "takes 4 coordinates" in err


def test_model_errors_name_the_file_as_typed(capsys, tmp_path, monkeypatch):
    """A truncated model is called truncated; a photo is not a .tflite; both name the path typed."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cut.tflite").write_bytes(default_model_path().read_bytes()[:5000])
    (tmp_path / "cat.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    for command in (["run"], ["verify"], ["info"], ["explain", "--op", "0", "--at", "0,0,0,0"]):
        assert main([command[0], "cut.tflite", *command[1:]]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith("refnet: error: cut.tflite: "), err
        assert "truncated" in err and "<model_content>" not in err
        assert main([command[0], "cat.jpg", *command[1:]]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("refnet: error: cat.jpg: not a model refnet knows (a .tflite, a Keras"), err


@pytest.mark.litert
def test_prepare_errors_name_the_file_as_typed(capsys, tmp_path, monkeypatch):
    """A model that parses but an op of which refnet refuses at allocate: run and verify name the path
    typed (verify's per-path interpreters once said <model_content>)."""
    import numpy as np
    from refnet.tflite_writer import ModelBuilder

    mb = ModelBuilder()
    x = mb.input("x", (1, 4, 4, 3), np.int8, scale=0.1, zero_point=0)
    y = mb.tensor("y", (1, 4, 4, 3), np.int8, scale=1 / 255, zero_point=-128)  # LOGISTIC's must be 1/256
    mb.op("LOGISTIC", [x], [y])
    mb.outputs.append(y)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad_scale.tflite").write_bytes(mb.build())
    for command in ("run", "verify"):
        assert main([command, "bad_scale.tflite"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("refnet: error: bad_scale.tflite: op 0 (LOGISTIC)") and "1/256" in err, err


@pytest.mark.litert
def test_verify_json_to_stdout(capsys):
    code = main(["verify", str(default_model_path()), "--json", "-", "-q"])
    captured = capsys.readouterr()
    report = json.loads(captured.out)  # stdout is the JSON alone
    assert code == 0 and report["all_equal"] is True
    assert "verdict: every compared tensor is bit-exact" in captured.err


@pytest.mark.shared
def test_verify_source_must_be_the_compiled_model(shared_dir, capsys):
    tpu = shared_dir / "models" / "mobilenet_v1_0.25_128_quant_edgetpu.tflite"
    unrelated = shared_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite"
    assert main(["verify", str(tpu), "--source", str(unrelated), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"--source {unrelated}" in err and "not the model it was compiled from" in err
    assert main(["verify", str(unrelated), "--source", str(unrelated), "-q"]) == 2
    assert "is not an Edge TPU model" in capsys.readouterr().err


@pytest.mark.shared
@pytest.mark.litert
def test_verify_names_top1_and_a_ready_explain_command(shared_dir, capsys):
    """Per path, LiteRT's top-1 against refnet's reference; for the first divergent op a
    `refnet explain` command whose coordinates reproduce the element (explain exits 0 on it)."""
    model = str(shared_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite")
    cat = str(shared_dir / "images" / "cat.bmp")
    assert main(["verify", model, "--image", cat, "--against", "optimized", "--profile", "reference", "-q"]) == 1
    out = capsys.readouterr().out
    assert "top-1: class 286, score 188 (refnet reference: class 286, score 191; same class)" in out
    assert "steps: max |difference| in quantized steps" in out  # the columns' legend
    command = next(line.split("step by step: ")[1] for line in out.splitlines() if "step by step: " in line)
    assert command.startswith(f"refnet explain {model} --op 2 --at ") and f"--image {cat}" in command
    assert "--profile optimized" in command  # the path's own arithmetic, beside refnet's reference
    argv = command.split("   (")[0].split()[1:]
    assert main(argv) == 0
    assert "matches the interpreter" in capsys.readouterr().out


@pytest.mark.shared
@pytest.mark.litert
def test_all_equal_path_lists_no_table_and_progress_only_on_request(shared_dir, capfd):
    model = str(shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite")
    assert main(["verify", model]) == 0
    captured = capfd.readouterr()
    assert "mismatched" not in captured.out  # no table of zeros when every tensor is equal
    assert "it/s" not in captured.err and "run/s" not in captured.err  # stderr is not a terminal
    assert main(["verify", model, "--progress"]) == 0
    assert "refnet: 100%" in capfd.readouterr().err


@pytest.mark.shared
@pytest.mark.litert
def test_model_explorer_node_data(shared_dir, tmp_path):
    """One node data file per path: graph id 'main', a value per op (its index), the first divergent
    op marked."""
    model = shared_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite"
    out = tmp_path / "me.json"
    assert main(["verify", str(model), "--image", str(shared_dir / "images" / "cat.bmp"), "--against", "all",
                 "--profile", "reference", "--model-explorer", str(out), "-q"]) == 1
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["me.optimized.json", "me.reference.json", "me.xnnpack.json"]
    reference = json.loads((tmp_path / "me.reference.json").read_text())["main"]
    assert set(reference["results"]) == {str(k) for k in range(66)}  # ops 0..65
    assert all(v["value"] == 0 for v in reference["results"].values())
    optimized = json.loads((tmp_path / "me.optimized.json").read_text())["main"]
    assert optimized["results"]["0"]["value"] == 0 and optimized["results"]["2"]["value"] > 0
    assert "bgColor" in optimized["results"]["2"] and "bgColor" not in optimized["results"]["3"]


def test_run_takes_a_profile(capsys):
    assert main(["run", "--profile", "optimized", "--no-compare"]) == 0
    out = capsys.readouterr().out
    assert "refnet, optimized@" in out and "Egyptian cat" in out
