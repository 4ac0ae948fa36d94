"""The cascade's first pass in the precision measured fastest on the CPU (``model/precision.py``)."""

import json
import os
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
import os
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


ONEDNN_PROBE = """
import logging
from nsfw_scan.model.precision import cpu_description, warn_if_onednn_off
logging.basicConfig(level=logging.WARNING, format="%(message)s")
print(cpu_description())
warn_if_onednn_off()
warn_if_onednn_off()
"""


@pytest.mark.parametrize("switch,said", [(None, "oneDNN on"), ("0", "oneDNN off (TF_ENABLE_ONEDNN_OPTS=0)"),
                                         ("False", "oneDNN off (TF_ENABLE_ONEDNN_OPTS=False)")])
def test_oneDNN_switched_off_is_said_and_warned_once(switch, said):
    """The one CPU setting that measured to matter (the job at 0.59x without oneDNN's kernels)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    out = subprocess.run([sys.executable, "-c", ONEDNN_PROBE], capture_output=True, text=True, check=True,
                         env=env if switch is None else {**env, "TF_ENABLE_ONEDNN_OPTS": switch})
    assert out.stdout.strip().endswith(said)
    warnings = [line for line in out.stderr.splitlines() if "oneDNN kernels are off" in line]
    assert len(warnings) == (0 if switch is None else 1), out.stderr
