"""tf_style.benchmarks' table: what tools/benchmark.py --what=speed prints (its numbers are measured
by running it, never by a timed test)."""

from tf_style.benchmarks import Budgeted, SpeedRow, speed_table


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
