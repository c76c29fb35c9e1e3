"""Budgets: `import embedrt` stays fast and loads neither onnx nor onnxruntime until a model is
loaded. (The wheel's size is checked where the wheel is built: .ci/run.)"""
from __future__ import annotations

import json
import os
import subprocess
import sys

IMPORT_BUDGET_MS = 150.0
HEAVY = ("onnx", "onnxruntime", "torch", "transformers")


def _python(code: str) -> str:
    env = dict(os.environ)
    env.pop("EMBEDRT_ISA", None)  # a forced level warns on some CPUs; irrelevant here
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


# embedrt's own share of the budget; the rest is numpy's (about 100 ms of CPU on a quiet core)
OWN_BUDGET_MS = 50.0
NUMPY_SHARE_MS = IMPORT_BUDGET_MS - OWN_BUDGET_MS

_TIMED = """
import time
{before}
w, c = time.perf_counter(), time.process_time()
import {module}
print(time.perf_counter() - w, time.process_time() - c)
"""


def _best(module: str, before: str = "", n: int = 5) -> tuple:
    """(best wall ms, best CPU ms) of importing `module` in n fresh processes."""
    runs = [tuple(float(v) * 1000 for v in _python(_TIMED.format(module=module, before=before)).split())
            for _ in range(n)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def test_import_time_budget():
    """`import embedrt` <= 150 ms: best of 5 fresh processes. On a loaded machine the wall time
    includes waiting for a core, so the process's CPU time counts too; and where numpy's own
    import already takes more than its share of CPU (a slow or busy machine), the budget scales
    with it. embedrt's own part (numpy already imported) must stay within 50 ms of CPU."""
    wall, cpu = _best("embedrt")
    _, numpy_cpu = _best("numpy")
    _, own_cpu = _best("embedrt", before="import numpy")
    scale = max(1.0, numpy_cpu / NUMPY_SHARE_MS)
    print(f"import embedrt: best wall {wall:.0f} ms, best CPU {cpu:.0f} ms (numpy alone {numpy_cpu:.0f} ms "
          f"CPU, embedrt's own part {own_cpu:.0f} ms CPU); budget {IMPORT_BUDGET_MS:.0f} ms x {scale:.2f}")
    assert own_cpu <= OWN_BUDGET_MS * scale, f"embedrt's own import takes {own_cpu:.0f} ms of CPU"
    assert min(wall, cpu) <= IMPORT_BUDGET_MS * scale, f"import embedrt: {wall:.0f} ms wall, {cpu:.0f} ms CPU"


_NO_HEAVY = """
import json, sys
import numpy as np
import embedrt
seen = {"import": [m for m in HEAVY if m in sys.modules]}
rng = np.random.default_rng(0)
x = rng.standard_normal((64, 32)).astype(np.float32)
for index in (embedrt.BinaryIndex(32), embedrt.Int8Index(32), embedrt.SDCIndex(32), embedrt.Index(32),
              embedrt.Index(32, coarse="sdc")):
    index.add(embedrt.quantize(x, "ubinary") if isinstance(index, embedrt.BinaryIndex) else x)
    q = x[:3] if not isinstance(index, embedrt.BinaryIndex) else embedrt.quantize(x[:3], "ubinary")
    index.search(q, 5)
embedrt.hamming_topk(embedrt.pack_bits(x[:2]), embedrt.pack_bits(x), 3)
embedrt.HashEmbed(8, 100, seed=1)(np.arange(10, dtype=np.uint64))
seen["indexes"] = [m for m in HEAVY if m in sys.modules]
print(json.dumps(seen))
"""


def test_no_onnx_until_a_model_is_loaded():
    seen = json.loads(_python(f"HEAVY = {HEAVY!r}\n" + _NO_HEAVY))
    assert seen == {"import": [], "indexes": []}, seen
