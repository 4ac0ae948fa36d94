"""The cascade's first pass in the precision measured fastest on the CPU (``model/precision.py``)."""

import json
import subprocess
import sys

import pytest

from nsfw_scan.model.precision import CANDIDATES, PREFERRED_BY, choose


@pytest.mark.parametrize("bfloat16,chosen", [
    (0.5, "float32"),  # Intel Xeons with AVX-512 BF16 and no AMX
    (1.0, "float32"),  # a tie keeps the exact precision
    (PREFERRED_BY * 0.99, "float32"),  # not enough faster to be worth a wider margin of doubt
    (PREFERRED_BY, "bfloat16"),
    (3.4, "bfloat16"),  # AMX
])
def test_float32_unless_another_precision_is_clearly_faster(bfloat16, chosen):
    assert choose({"float32": 100.0, "bfloat16": 100.0 * bfloat16}) == chosen


PROBE = """
import json
from nsfw_scan.model.precision import cpu_description, fastest_precision
first, again = fastest_precision(), fastest_precision()
print(json.dumps({"precision": first.precision, "speeds": first.speeds, "seconds": first.seconds,
                  "once": first is again, "described": first.describe(), "cpu": cpu_description()}))
"""


def test_each_process_measures_once_and_takes_a_candidate():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    measured = json.loads(out.stdout.splitlines()[-1])
    assert measured["precision"] in CANDIDATES and sorted(measured["speeds"]) == sorted(CANDIDATES)
    assert all(speed > 0 for speed in measured["speeds"].values()) and measured["once"]
    assert measured["precision"] == choose(measured["speeds"])
    assert measured["described"].startswith(measured["precision"]) and "AVX-512 BF16" in measured["cpu"]
