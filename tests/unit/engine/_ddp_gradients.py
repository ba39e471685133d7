"""Worker of ``test_cli_distributed.py::test_real_networks_get_the_global_batch_gradient`` (run under torchrun).

Every process builds the same network (float64, no stochastic depth), computes the single-process gradient of the
mean loss over a batch of 4 itself, then its DistributedDataParallel gradient over its half of the batch with
global batch norm and the loss weighting of the training loop; rank 0 prints the relative error of the whole
gradient and of the decoder outputs as JSON.
"""

from __future__ import annotations

import copy
import json
import sys

import torch
from torch.nn.parallel import DistributedDataParallel

from ssmad.engine import distributed
from ssmad.registry import create_model


def main(name: str) -> None:
    """Compare the gradients of ``name`` (``mambaad`` or ``rd4ad``) over one global batch."""
    torch.set_num_threads(1)
    distributed.setup("cpu")
    rank, world = distributed.rank(), distributed.world_size()
    torch.manual_seed(0)
    options: dict[str, object] = {"pretrained": False, "image_size": 64}
    if name == "mambaad":
        options["drop_path_rate"] = 0.0
    net = create_model(name, **options)._build_network().double()
    single = copy.deepcopy(net).train()
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    enc, dec = single(x)
    single.loss(enc, dec).backward()
    ref_dec = [d.detach() for d in dec]
    ref = {k: p.grad.clone() for k, p in single.named_parameters() if p.grad is not None}

    distributed.convert_batchnorm(net)
    model = DistributedDataParallel(net, broadcast_buffers=False).train()
    part = slice(rank * 4 // world, (rank + 1) * 4 // world)
    enc, dec = model(x[part])
    (net.loss(enc, dec) * (x[part].shape[0] * world / 4)).backward()
    got = {k: p.grad for k, p in net.named_parameters() if p.grad is not None}
    num = sum(((got[k] - ref[k]) ** 2).sum() for k in ref)
    den = sum((v**2).sum() for v in ref.values())
    dec_err = max(((d.detach() - r[part]).norm() / r[part].norm()).item() for d, r in zip(dec, ref_dec, strict=True))
    if rank == 0:
        print(json.dumps({"grad": float((num / den).sqrt()), "dec": dec_err, "same_keys": got.keys() == ref.keys()}))


if __name__ == "__main__":
    main(sys.argv[1])
