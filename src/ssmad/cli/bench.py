"""``ssmad bench``: benchmarks that print ratios measured side by side in one run."""

from __future__ import annotations

import argparse
import logging
import time


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``bench`` sub-command and its targets."""
    p = sub.add_parser("bench", help="run a benchmark (ratios measured side by side in one run)")
    targets = p.add_subparsers(dest="target", metavar="TARGET", required=True)
    scan = targets.add_parser("scan", help="selective-scan backends vs reference, peer and roofline")
    scan.add_argument("--shapes", default=None, help="comma-separated shape names (default: all)")
    scan.add_argument("--repeats", type=int, default=3, help="timed repetitions per measurement (min is kept)")
    scan.add_argument("--backends", default=None, help="comma-separated backends (default: all available)")
    scan.add_argument("--no-peer", action="store_true", help="skip the mambapy peer")
    scan.add_argument("--json", default=None, help="also write the table as JSON to this file")
    scan.set_defaults(func=_run_scan)
    ssd = targets.add_parser("ssd", help="SSD scan (Mamba-2) vs reference, selective-scan peer and roofline")
    ssd.add_argument("--shapes", default=None, help="comma-separated shape names (default: all MambaADv2 stages)")
    ssd.add_argument("--chunk-size", default="16,64", help="comma-separated chunk lengths to time (default 16,64)")
    ssd.add_argument("--repeats", type=int, default=3, help="timed rounds after a warm-up round (best is kept)")
    ssd.add_argument("--threads", type=int, default=None, help="torch threads for the run (default: torch's)")
    ssd.add_argument("--no-peer", action="store_true", help="skip the selective_scan peer")
    ssd.add_argument("--json", default=None, help="also write the table to this new JSON file")
    ssd.set_defaults(func=_run_ssd)
    mad = targets.add_parser(
        "mambaad",
        help="MambaAD vs MambaADv2 vs RD4AD: train step, images/s, FLOPs, efficiency ratio (decoder cost per FLOP)",
    )
    mad.add_argument("--batch", type=int, default=8, help="images per batch (default 8)")
    mad.add_argument("--size", type=int, default=256, help="square input size, a multiple of 32 (default 256)")
    mad.add_argument("--encoder", default="resnet34", help="timm encoder shared by all models (default resnet34)")
    mad.add_argument(
        "--repeats", type=int, default=3, help="timed inference rounds after a warm-up (min is kept; default 3)"
    )
    mad.add_argument(
        "--train-repeats",
        type=int,
        default=3,
        help="timed training-step rounds, models interleaved in each (min is kept; 0: skip training; default 3)",
    )
    mad.add_argument(
        "--models",
        default="mambaad,mambaadv2,rd4ad",
        help="comma-separated models (default mambaad,mambaadv2,rd4ad)",
    )
    mad.add_argument("--json", default=None, help="also write the report to this new JSON file")
    mad.set_defaults(func=_run_mambaad)
    acm = targets.add_parser(
        "acmamba",
        help="ACMamba sweep of one option (e.g. --sweep psi=50,100,150,300): AUCs, time and diagnostics per value",
    )
    acm.add_argument("--sweep", required=True, metavar="KEY=V1,V2,…", help="the ACMamba option and its values")
    acm.add_argument("--input", default=None, metavar="DIR", help="folder of labelled cubes (default: generated)")
    acm.add_argument("--scenes", default=None, metavar="HxWxB,…", help="generated scene sizes without --input")
    acm.add_argument("--seeds", default="4", help="comma-separated ACMamba seeds, mean over them (default 4)")
    acm.add_argument("-o", "--model-option", action="append", default=[], metavar="KEY=VALUE",
                     help="another ACMamba option for every fit (repeatable), e.g. -o iterations=50")  # fmt: skip
    acm.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    acm.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    acm.add_argument("--json", default=None, help="also write the sweep to this new JSON file")
    acm.set_defaults(func=_run_acmamba)
    gpu = targets.add_parser(
        "gpu",
        help="one command for a GPU machine: gpu tests, scan kernels vs torch/mamba-ssm/roofline, MambaAD images/s",
    )
    gpu.add_argument("--json", default=None, help="new JSON file for the report (default ssmad-bench-gpu-<time>.json)")
    gpu.add_argument("--shapes", default=None, help="comma-separated scan shapes (default mad_s3,mad_s2,acm_infer)")
    gpu.add_argument("--repeats", type=int, default=5, help="timed rounds per scan measurement (min is kept)")
    gpu.add_argument("--skip-tests", action="store_true", help="do not run the gpu-marked tests")
    gpu.add_argument("--skip-models", action="store_true", help="do not time MambaAD")
    gpu.set_defaults(func=_run_gpu)
    exp = targets.add_parser("export", help="onnxruntime vs PyTorch on the CPU (exported graph vs its module)")
    exp.add_argument("--models", default="mambaad,rd4ad", help="comma-separated models (default mambaad,rd4ad)")
    exp.add_argument("--encoder", default="resnet34", help="timm encoder of both models (default resnet34)")
    exp.add_argument("--size", type=int, default=256, help="square input size, a multiple of 32 (default 256)")
    exp.add_argument("--batch", type=int, default=1, help="images per call (default 1)")
    exp.add_argument("--rounds", type=int, default=5, help="paired timed rounds after a warm-up (default 5)")
    exp.add_argument("--threads", type=int, default=None, help="threads of both runtimes (default: torch's)")
    exp.add_argument("--exporter", default="torchscript", help="torchscript (default) or dynamo")
    exp.add_argument("--json", default=None, help="also write the report to this new JSON file")
    exp.set_defaults(func=_run_export)


def _run_scan(args: argparse.Namespace) -> int:
    from ..bench.scan import run_scan_benchmark

    run_scan_benchmark(
        shapes=args.shapes.split(",") if args.shapes else None,
        backends=args.backends.split(",") if args.backends else None,
        repeats=args.repeats,
        peer=not args.no_peer,
        json_path=args.json,
    )
    return 0


def _run_ssd(args: argparse.Namespace) -> int:
    from ..bench.ssd import run_ssd_benchmark
    from ..errors import InputError

    try:
        chunk_sizes = [int(q) for q in args.chunk_size.split(",") if q.strip()]
    except ValueError as exc:
        raise InputError(
            f"--chunk-size must be comma-separated integers such as 16,64, got {args.chunk_size!r}"
        ) from exc
    run_ssd_benchmark(
        shapes=args.shapes.split(",") if args.shapes else None,
        chunk_sizes=chunk_sizes,
        repeats=args.repeats,
        peer=not args.no_peer,
        threads=args.threads,
        json_path=args.json,
    )
    return 0


def _run_mambaad(args: argparse.Namespace) -> int:
    from ..bench.mambaad import run_mambaad_benchmark

    run_mambaad_benchmark(
        batch=args.batch,
        size=args.size,
        encoder=args.encoder,
        repeats=args.repeats,
        train_repeats=args.train_repeats,
        models=[m for m in args.models.split(",") if m],
        json_path=args.json,
    )
    return 0


def _run_acmamba(args: argparse.Namespace) -> int:
    import torch

    from ..bench import acmamba as sweep
    from ..errors import ConfigError
    from ._hsi import parse_options

    sweep.check_json_target(args.json)
    key, values = sweep.parse_sweep(args.sweep)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError as err:
        raise ConfigError(f"--seeds {args.seeds!r}: expected comma-separated integers, e.g. --seeds 4,0,1") from err
    if not seeds:
        raise ConfigError("--seeds is empty; give at least one seed, e.g. --seeds 4")
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    options = {"device": args.device, **parse_options(args.model_option)}
    scenes = sweep.sweep_scenes(args.input, args.scenes or sweep.DEFAULT_SCENES)
    start = time.perf_counter()
    rx, rows = sweep.run_acmamba_sweep(
        key, values, scenes, seeds=seeds, options=options, on_fit=lambda what: logging.getLogger(__name__).info(what)
    )
    print(sweep.format_sweep(key, rx, rows, len(scenes), seeds))
    print(f"\n{len(values) * len(seeds) * len(scenes)} ACMamba fits in {time.perf_counter() - start:.0f} s; "
          f"{sweep.machine_line()}")  # fmt: skip
    if args.json:
        meta = {"seeds": seeds, "options": options, "scenes": [name for name, _, _ in scenes]}
        print(f"written: {sweep.write_sweep_json(args.json, key, rx, rows, meta)}")
    return 0


def _run_gpu(args: argparse.Namespace) -> int:
    from ..bench.gpu import SCAN_SHAPES, run_gpu_benchmark
    from ..errors import ConfigError

    if args.repeats < 1:
        raise ConfigError(f"bench gpu: --repeats must be at least 1, got {args.repeats}")
    run_gpu_benchmark(
        args.json,
        shapes=args.shapes.split(",") if args.shapes else SCAN_SHAPES,
        repeats=args.repeats,
        run_tests=not args.skip_tests,
        run_models=not args.skip_models,
    )
    return 0


def _run_export(args: argparse.Namespace) -> int:
    from ..bench.export import run_export_benchmark

    run_export_benchmark(
        models=[m for m in args.models.split(",") if m],
        encoder=args.encoder,
        size=args.size,
        batch=args.batch,
        rounds=args.rounds,
        threads=args.threads,
        exporter=args.exporter,
        json_path=args.json,
    )
    return 0
