"""Fuzz harness: the native engine's ONNX recogniser (embedrt.encoder._native_load.
params_from_onnx) on mutated copies of the tiny exports in tests/data/export_corpus.

The input steers structured mutations (an op type changed, an input rewired, a node dropped or
duplicated, an attribute or an initializer's dims, type or bytes altered, a graph input
renamed); a few inputs also flip bytes of the serialized graph. Run through tests/fuzz/run.py."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import atheris  # noqa: E402
from _common import DATA, instrumented, main, workdir  # noqa: E402

with instrumented():
    import onnx
    from _indexes import write

    from embedrt.encoder._native_load import params_from_onnx, read_hf_config

MODELS = [DATA / "tiny-bert-gelu-new" / "onnx" / "model.onnx"] + sorted(
    p for p in (DATA / "tiny-bert" / "onnx").glob("*.onnx") if p.name != "external_data.onnx")
RAW = [p.read_bytes() for p in MODELS]


def _config(folder):
    try:
        return read_hf_config(folder)
    except ValueError:
        return None  # a family the engine declines (gelu_new): the graph is read without one


CONFIGS = [_config(p.parent.parent) for p in MODELS]
PATH = workdir() / "model.onnx"



def _mutate(fdp, model) -> None:
    g = model.graph
    nodes, inits = g.node, g.initializer
    names = [t for n in nodes for t in list(n.input) + list(n.output)] + [i.name for i in inits]
    what = fdp.ConsumeIntInRange(0, 8)
    if what == 0 and nodes:
        n = nodes[fdp.ConsumeIntInRange(0, len(nodes) - 1)]
        n.op_type = nodes[fdp.ConsumeIntInRange(0, len(nodes) - 1)].op_type
    elif what == 1 and nodes:
        n = nodes[fdp.ConsumeIntInRange(0, len(nodes) - 1)]
        if n.input:
            j = fdp.ConsumeIntInRange(0, len(n.input) - 1)
            n.input[j] = names[fdp.ConsumeIntInRange(0, len(names) - 1)] if fdp.ConsumeBool() else ""
    elif what == 2 and nodes:
        del nodes[fdp.ConsumeIntInRange(0, len(nodes) - 1)]
    elif what == 3 and nodes:
        n = nodes[fdp.ConsumeIntInRange(0, len(nodes) - 1)]
        if n.attribute:
            a = n.attribute[fdp.ConsumeIntInRange(0, len(n.attribute) - 1)]
            a.i = fdp.ConsumeIntInRange(-(1 << 40), 1 << 40)
            a.f = fdp.ConsumeFloat()
            if a.ints:
                a.ints[fdp.ConsumeIntInRange(0, len(a.ints) - 1)] = fdp.ConsumeIntInRange(-8, 8)
    elif what == 4 and inits:
        t = inits[fdp.ConsumeIntInRange(0, len(inits) - 1)]
        if t.dims and fdp.ConsumeBool():
            t.dims[fdp.ConsumeIntInRange(0, len(t.dims) - 1)] = fdp.ConsumeIntInRange(-1, 1 << 20)
        elif fdp.ConsumeBool():
            t.data_type = fdp.ConsumeIntInRange(0, 21)
        elif t.raw_data:
            raw = bytearray(t.raw_data)
            cut = fdp.ConsumeIntInRange(0, len(raw))
            t.raw_data = bytes(raw[:cut]) + fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 16))
    elif what == 5 and inits:
        del inits[fdp.ConsumeIntInRange(0, len(inits) - 1)]
    elif what == 6 and g.input:
        g.input[fdp.ConsumeIntInRange(0, len(g.input) - 1)].name = fdp.ConsumeUnicodeNoSurrogates(12)
    elif what == 7 and nodes:
        nodes.append(nodes[fdp.ConsumeIntInRange(0, len(nodes) - 1)])
    elif what == 8 and g.output:
        g.output[0].name = names[fdp.ConsumeIntInRange(0, len(names) - 1)]


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    which = fdp.ConsumeIntInRange(0, len(MODELS) - 1)
    model = onnx.ModelProto()
    model.ParseFromString(RAW[which])
    for _ in range(fdp.ConsumeIntInRange(1, 4)):
        _mutate(fdp, model)
    blob = bytearray(model.SerializeToString())
    if fdp.ConsumeIntInRange(0, 7) == 0:  # now and then, damage the serialized bytes too
        for _ in range(fdp.ConsumeIntInRange(1, 8)):
            blob[fdp.ConsumeIntInRange(0, len(blob) - 1)] = fdp.ConsumeIntInRange(0, 255)
    write(PATH, bytes(blob))
    cfg = CONFIGS[which]
    params_from_onnx(PATH, dict(cfg) if cfg is not None and fdp.ConsumeBool() else None)


if __name__ == "__main__":
    main(one_input)
