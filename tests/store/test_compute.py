import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as real

from wsrec.store._compute import call, pc

ROOT = Path(__file__).resolve().parents[2]


def test_call_runs_the_function_of_that_name():
    kinds = pa.array(["text", None, "binary", "text"])
    text = pa.scalar("text")
    assert call("equal", kinds, text).equals(real.equal(kinds, text))
    assert call("all", call("equal", kinds, text)).as_py() is False
    assert call("all", call("equal", kinds.slice(3), text)).as_py() is True
    payload = pa.array([b"a", b"", None], pa.binary())
    joined = call("binary_join_element_wise", payload, pa.scalar(b"", pa.binary()),
                  pa.scalar(b"\n", pa.binary()))
    assert joined.to_pylist() == [b"a\n", b"\n", None]


def test_pc_is_pyarrow_compute():
    assert pc.equal is real.equal
    assert pc.value_counts(pa.array(["a", "a"])).to_pylist() == [{"values": "a", "counts": 2}]


def test_pyarrow_compute_is_imported_on_first_use_only():
    code = ("import sys; from wsrec.store._compute import call, pc; import pyarrow as pa;"
            "call('equal', pa.array([1]), pa.scalar(1));"
            "assert 'pyarrow.compute' not in sys.modules, 'call';"
            "pc.equal; assert 'pyarrow.compute' in sys.modules; print('ok')")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert run.stdout.strip() == "ok", run.stderr
