"""One command for a GPU machine (same as ``ssmad bench gpu``): the gpu-marked tests, the scan kernels (triton vs
torch and mamba-ssm, forward + backward, against the GPU's roofline) and MambaAD training/inference images/s.

Usage: python benchmarks/bench_gpu.py [--json new_file.json] [--shapes mad_s3,mad_s2,acm_infer] [--repeats 5]
       [--skip-tests] [--skip-models]
Exits with code 2 and a message when no CUDA device is present.
"""

import sys
from pathlib import Path

if __name__ == "__main__":
    src = Path(__file__).resolve().parents[1] / "src"
    if src.is_dir() and str(src) not in sys.path:  # run from a checkout without installing
        sys.path.insert(0, str(src))
    from ssmad.cli.main import main

    sys.exit(main(["bench", "gpu", *sys.argv[1:]]))
