"""`densenet data bench`: the photo loader's images/s per worker count, through the CLI."""

from tests.helpers import cli_json, run_cli

from densenet.data.synthetic import write_shapes_folder


def test_data_bench_reports_every_worker_count(tmp_path):
    folder = write_shapes_folder(tmp_path / "photos", per_class=8, size=120, formats=("jpg", "png"), aspect=4 / 3)
    doc = cli_json("data", "bench", "--data-dir", str(folder), "--workers", "0,2", "--resize", "64",
                   "--batch-size", "4", "--batches", "2")
    assert [r["workers"] for r in doc["rows"]] == [0, 2]
    for row in doc["rows"]:
        assert row["images_per_s"] > 0
        assert abs(row["images_per_s"] * row["median_batch_s"] / 4 - 1) < 0.002  # images/s = batch / median batch time
    assert (doc["pictures"], doc["resize"], doc["rounds"]) == (18, 64, 2)  # the 80% train split of 24
    assert {"cpu", "avx512_bf16", "amx_bf16", "amx_int8", "command"} <= set(doc["machine"])


def test_data_bench_explains_bad_arguments(tmp_path):
    folder = write_shapes_folder(tmp_path / "photos", per_class=2, size=40)
    for args, words in ((["--workers", "0,x"], "comma-separated"), ([], "need 768"),
                        (["--workers", "-1"], ">= 0")):
        result = run_cli("data", "bench", "--data-dir", str(folder), *args)
        assert result.returncode != 0
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and words in last, last
    result = run_cli("data", "bench")
    assert result.returncode == 2 and "needs --data-dir" in result.stderr
