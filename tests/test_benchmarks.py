"""tf_style.benchmarks' table: what tools/benchmark.py --what=speed prints (its numbers are measured
by running it, never by a timed test)."""

import os
import subprocess
import sys

import pytest

from tf_style.benchmarks import Budgeted, SpeedRow, speed_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_speed_table_labels_each_budgeted_run_and_judges_it_against_scipy():
    row = SpeedRow(size=256, shape=(170, 256), floor=0.25, step=0.275, evaluations_per_step=1.0,
                   scipy_evaluations=301, scipy_seconds=100.0, scipy_loss=181.0)
    row.budgeted = [Budgeted(50.0, 183.7, 50.2, 250, None, scales=3),
                    Budgeted(50.0, 180.5, 50.1, 206, 47.5, scales=1)]
    assert speed_table([row]).splitlines() == [
        "256x170: floor 0.250 s, our step 0.275 s = 1.10x the floor (1.00 evaluations per step)",
        "  scipy L-BFGS-B, 301 evaluations: loss 181 in 100.0 s",
        "  defaults, max_seconds 50.0 (0.50x scipy's): loss 183.7 > scipy's, 250 steps; scipy's loss reached never",
        "  scales=1, max_seconds 50.0 (0.50x scipy's): loss 180.5 <= scipy's, 206 steps; scipy's loss reached "
        "after 47.5 s = 0.47x",
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        # Each of these once ended in a traceback, the --json one after the whole half-hour measurement.
        (["--sizes=128,abc"], "--sizes must be image sizes in pixels, each from 16 to 8192; got 'abc'"),
        (["--sizes=8"], "--sizes must be image sizes in pixels, each from 16 to 8192; got '8'"),
        (["--memory_sizes=1e3"], "--memory_sizes must be image sizes in pixels, each from 16 to 8192; got '1e3'"),
        (["--scipy_evaluations=0"], "--scipy_evaluations must be >= 1; got 0"),
        (["--json=no/such/folder/speed.json"],
         "--json: cannot write 'no/such/folder/speed.json'; expected a file name in an existing, writable folder"),
    ],
)
def test_bad_benchmark_flags_are_one_line_before_any_work(tmp_path, args, message):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "benchmark.py"), *args],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", f"benchmark.py: error: {message}\n")
    assert os.listdir(tmp_path) == []


def test_a_json_path_under_a_file_is_refused_before_any_work(tmp_path):
    (tmp_path / "afile").write_text("kept")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "benchmark.py"), "--json=afile/x.json"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert (proc.returncode, proc.stderr) == (2, "benchmark.py: error: --json: cannot write 'afile/x.json'; expected a "
                                                 "file name in an existing, writable folder\n")
    assert sorted(os.listdir(tmp_path)) == ["afile"] and (tmp_path / "afile").read_text() == "kept"
