"""The command line: run (embedded default), verify (exit codes, JSON, HTML, Edge TPU), explain."""
import json
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


@pytest.mark.shared
def test_verify_html_renders(shared_dir, tmp_path):
    """Rendered by headless Chromium when it is installed (CI installs Debian's chromium);
    otherwise parsed with html.parser, which checks the same structure."""
    model = shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite"
    page = tmp_path / "r.html"
    assert main(["verify", str(model), "--html", str(page), "-q"]) == 0
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is not None:
        dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                              page.as_uri()], capture_output=True, text=True, timeout=120).stdout
        assert 'id="summary"' in dom and "31 / 31" in dom and "data:image/png;base64" in dom
        return
    from html.parser import HTMLParser

    class Collect(HTMLParser):
        tables, imgs, cells = [], [], []

        def handle_starttag(self, tag, attrs):
            (self.tables if tag == "table" else self.imgs if tag == "img" else []).append(dict(attrs))

        def handle_data(self, data):
            self.cells.append(data)

    parser = Collect()
    parser.feed(page.read_text())
    assert any(t.get("id") == "summary" for t in parser.tables)
    assert any(i.get("src", "").startswith("data:image/png;base64") for i in parser.imgs)
    assert "31 / 31" in parser.cells


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
    for reader in ("head -1", "true"):  # `true` closes the pipe before anything is read
        shell = subprocess.run(f"{sys.executable} -m refnet profiles | {reader}", shell=True,
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
