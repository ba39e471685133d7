"""onnxruntime vs PyTorch on the CPU (same as ``ssmad bench export``): each model is exported to ONNX in memory and
the exported graph is timed against the PyTorch module it came from, in paired interleaved rounds, same uint8
batch, same thread count.

Usage: python benchmarks/bench_export.py [--models mambaad,rd4ad] [--encoder resnet34] [--size 256] [--batch 1]
       [--rounds 5] [--threads N] [--exporter torchscript] [--json new_file.json]
"""

import argparse
import logging

from ssmad.bench.export import run_export_benchmark

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="mambaad,rd4ad")
    parser.add_argument("--encoder", default="resnet34")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--exporter", default="torchscript")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run_export_benchmark(
        models=args.models.split(","),
        encoder=args.encoder,
        size=args.size,
        batch=args.batch,
        rounds=args.rounds,
        threads=args.threads,
        exporter=args.exporter,
        json_path=args.json,
    )
