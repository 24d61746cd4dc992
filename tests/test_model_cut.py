"""Models refnet cannot run to the end (a vendor's custom op at the end, as pose models have): the
Interpreter's typed error only when an output depends on that op, and `refnet verify` running and
verifying the model up to it (refnet/model_cut.py: the file itself, cut before the op)."""
import dataclasses

import numpy as np
import pytest

import refnet
from refnet.cli import main
from refnet.graph import Op, Tensor
from refnet.model_cut import cut_before, frontier
from refnet.tflite_reader import read_tflite
from refnet.tflite_writer import write_tflite
from tools.fuzz import _mini_model


def _with_vendor_op(dtype="int8", dead=False) -> bytes:
    """The fuzzer's miniature MobileNet with a custom op 'VendorDecoderOp' reading its softmax
    (and, unless `dead`, producing the model's output)."""
    g = read_tflite(model_content=_mini_model(dtype))
    probs = g.outputs[0]
    out = Tensor(len(g.tensors), "decoded", (1, 5), np.dtype(np.float32))
    g.tensors.append(out)
    g.ops.append(Op(len(g.ops), "CUSTOM", (probs,), (out.index,), {"custom_options": b"\x00\x01"},
                    custom_code="VendorDecoderOp"))
    g.outputs = (probs,) if dead else (out.index,)
    return write_tflite(g)


def test_interpreter_refuses_only_when_an_output_needs_the_op():
    content = _with_vendor_op()
    with pytest.raises(refnet.UnsupportedOpError, match=r"op 9 is custom op 'VendorDecoderOp'.*--until-op 9"):
        refnet.Interpreter(model_content=content)
    it = refnet.Interpreter(model_content=_with_vendor_op(dead=True))  # nothing reads its output
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], np.zeros((1, 12, 12, 3), np.int8))
    it.invoke()
    assert it.get_tensor(it.get_output_details()[0]["index"]).shape == (1, 5)


def test_cut_keeps_every_byte_but_two_fields():
    content = _with_vendor_op()
    g = read_tflite(model_content=content)
    cut = cut_before(content, g, 9)
    assert cut.outputs == frontier(g, 9) == [g.ops[8].outputs[0]]
    assert cut.content[:len(content)].count(b"VendorDecoderOp") == 1  # the op code stays, unused
    c = read_tflite(model_content=cut.content)
    assert len(c.ops) == 9 and c.outputs == tuple(cut.outputs)
    for a, b in zip(c.ops, g.ops):
        assert (a.kind, a.inputs, a.outputs, a.options) == (b.kind, b.inputs, b.outputs, b.options)
    for a, b in zip(c.tensors, g.tensors):
        assert dataclasses.astuple(a)[:4] == dataclasses.astuple(b)[:4]
    diff = [i for i, (x, y) in enumerate(zip(cut.content, content)) if x != y]
    assert len(diff) <= 8  # the operators vector's length and the outputs field's offset


@pytest.mark.litert
@pytest.mark.parametrize("dtype", ["int8", "uint8", "float32"])
def test_verify_runs_up_to_the_op_refnet_cannot_run(dtype, capsys):
    """LiteRT cannot run the unknown op either; both run the cut and agree on every tensor."""
    import tempfile
    content = _with_vendor_op(dtype)
    n = len(read_tflite(model_content=content).ops) - 1  # the custom op is the last
    with tempfile.NamedTemporaryFile(suffix=".tflite") as f:
        f.write(content)
        f.flush()
        assert main(["verify", f.name, "--against", "reference"]) == 0
        out = capsys.readouterr().out
        assert (f"refnet cannot run op {n} (op {n} (VendorDecoderOp)); verifying the model up to it: "
                f"ops 0..{n - 1} of {n + 1}, the model cut before op {n}") in out
        assert "every compared tensor is bit-exact" in out


@pytest.mark.litert
def test_until_op_on_a_real_converted_model(shared_dir, capsys):
    """A converter-written model (Coral's MobileNetV2 uint8) cut before op 30: the copy LiteRT runs
    is the file with two fields changed, and every path agrees with refnet's profiles."""
    model = shared_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite"
    content = model.read_bytes()
    cut = cut_before(content, read_tflite(model_content=content), 30)
    assert len(cut.content) - len(content) <= 3 + 4 * (1 + len(cut.outputs))
    assert main(["verify", str(model), "--until-op", "30", "--against", "all"]) == 0
    out = capsys.readouterr().out
    assert "--until-op 30: ops 0..29 of 66, the model cut before op 30" in out
    assert main(["verify", str(model), "--until-op", "99"]) == 2
