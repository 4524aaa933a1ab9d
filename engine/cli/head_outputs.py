"""What a run says about its heads: the threshold each fork's detector test uses, and the tensors feeding
the heads as --save-output writes them."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from yolo.errors import FusetileError
from yolo.network import Network


def save_heads(path: Path, head_inputs: dict[int, np.ndarray]) -> None:
    """The tensors feeding the heads: a .npz keyed L<i> (Darknet's index of the layer), or, for one head, a
    .npy of that tensor."""
    with path.open("wb") as f:  # a file object: NumPy would add a suffix to a path
        if len(head_inputs) == 1 and not path.name.lower().endswith(".npz"):
            np.save(f, next(iter(head_inputs.values())), allow_pickle=False)
        else:
            np.savez(f, **{f"L{i}": t for i, t in head_inputs.items()})


DEFAULT_THRESH = {"pjreddie": 0.5, "alexeyab": 0.25}  # each fork's detector test default


def check_save_output(args, network: Network) -> None:
    """A .npy holds one tensor: refused, before anything runs, for a network with several heads."""
    if args.save_output is not None and args.save_output.lower().endswith(".npy") and len(network.heads) > 1:
        raise FusetileError(f"--save-output {args.save_output!r}: {network.name} has {len(network.heads)} heads "
                            f"(fed by layers {', '.join(map(str, network.head_inputs))}): expected a .npz file name, "
                            f"which keeps each under the key L<layer>")
