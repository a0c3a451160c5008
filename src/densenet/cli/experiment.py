"""``densenet experiment NAME``: test one of the seed's claims or ideas by experiment, and write the report."""

from __future__ import annotations

import argparse

from densenet.cli.common import add_common_flags, emit, info, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    from densenet.experiments import list_experiments
    from densenet.experiments.scales import SCALES

    scales = "; ".join(f"{s.name}: {s.description}" for s in SCALES.values())
    what = ("Run an experiment (or `all`), reusing the runs it already has under OUT/runs, and write OUT/NAME.json, "
            "NAME.csv, NAME.png and OUT/README.md with a Verdict line. With --from-records, train and time nothing: "
            "redraw those files from the raw records already in OUT/NAME.json.")
    p = sub.add_parser("experiment", help="test the seed's claims and ideas by experiment",
                       description=f"{what} Experiments: {', '.join(list_experiments())}. Scales: {scales}")
    p.add_argument("name", metavar="NAME", help="all, an experiment name, or a unique prefix such as claim1 or idea-a")
    p.add_argument("--out", default="evidence", metavar="DIR", help="report folder (default: evidence)")
    p.add_argument("--scale", choices=list(SCALES), default="cpu", help="how big the runs are (default: cpu)")
    p.add_argument("--seeds", type=positive_int, default=3, metavar="N", help="seeds per configuration (default 3)")
    p.add_argument("--dataset", choices=["fashion-mnist", "mnist", "cifar-10", "cifar-100"],
                   help="override the scale's dataset")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the dataset's files")
    p.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda or cuda:N")
    p.add_argument("--jobs", type=positive_int, default=1, metavar="N",
                   help="training runs in parallel, each with its share of the CPU threads (default 1)")
    p.add_argument("--runs-dir", metavar="DIR", help="where runs and timings are cached (default: OUT/runs)")
    p.add_argument("--from-records", action="store_true",
                   help="train and time nothing: re-render OUT/README.md and each NAME.json summary and verdict, "
                   "NAME.csv and NAME.png from the raw records stored in OUT/NAME.json by an earlier run of the same "
                   "command (same --scale, --seeds, --dataset, --device; each report keeps its own --jobs); refused "
                   "if they do not match what the experiment makes now")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_common_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    from densenet.engine.distributed import resolve_device
    from densenet.experiments import run_experiments

    device = str(resolve_device(args.device))
    reports = run_experiments(args.name, args.out, scale=args.scale, seeds=args.seeds, dataset=args.dataset,
                              data_dir=args.data_dir, device=device, jobs=args.jobs, runs_dir=args.runs_dir,
                              progress=not args.no_progress, log=info, from_records=args.from_records)
    doc = [{k: r[k] for k in ("name", "verdict", "reason", "command", "runs")} for r in reports]
    emit(args, doc, "\n".join(f"{r['name']}: Verdict: {r['verdict']}" for r in reports)
         + f"\nreport: {args.out}/README.md")
    return 0
