"""Reference tensors of the official VGGT-Ω preprocessing and pose decoding.

Run from a checkout of facebookresearch/vggt-omega (commit in README.md), e.g.
``PYTHONPATH=/path/to/vggt-omega python make_reference.py``. torchvision is only used by the
official loader for ``transforms.ToTensor``; where it is not installed, a stand-in with
ToTensor's documented behaviour for uint8 RGB PIL images (HWC -> CHW float32 / 255) is
registered first (the figures are the same bit for bit).
"""

import sys
import types
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
# the first three images are the VGGT preprocessing fixtures beside the repository
GOLDEN_PRE = HERE.parents[3] / "shared" / "golden" / "preprocess"

try:
    import torchvision  # noqa: F401
except ImportError:

    class _ToTensor:
        def __call__(self, pic):
            arr = np.array(pic, copy=True)
            return torch.from_numpy(arr).permute(2, 0, 1).contiguous().float().div(255)

    tv = types.ModuleType("torchvision")
    tv.transforms = types.ModuleType("torchvision.transforms")
    tv.transforms.ToTensor = _ToTensor
    sys.modules["torchvision"] = tv
    sys.modules["torchvision.transforms"] = tv.transforms

from vggt_omega.utils.load_fn import load_and_preprocess_images  # noqa: E402
from vggt_omega.utils.pose_enc import encoding_to_camera  # noqa: E402

IMAGES = ("img0_640x480.png", "img1_480x640.png", "img2_320x240_rgba.png", "wide_300x90.png", "tall_50x160.png")
# (key, image indices, mode, image_resolution)
CASES = [
    ("balanced_96_all", (0, 1, 2, 3, 4), "balanced", 96),
    ("max_size_64_all", (0, 1, 2, 3, 4), "max_size", 64),
    ("balanced_192_img0", (0,), "balanced", 192),
    ("max_size_64_wide_tall", (3, 4), "max_size", 64),
]


def image_path(i: int) -> Path:
    return (GOLDEN_PRE if i < 3 else HERE) / IMAGES[i]


def main() -> None:
    out = {}
    for key, idx, mode, res in CASES:
        t = load_and_preprocess_images([str(image_path(i)) for i in idx], mode=mode, image_resolution=res)
        u8 = (t * 255).round()
        assert torch.equal(u8 / 255, t), key  # exactly representable: store as uint8
        out[key] = u8.to(torch.uint8)
    g = torch.Generator().manual_seed(7)
    enc = torch.randn(2, 3, 9, generator=g)
    enc[..., 7:] = 0.3 + 1.5 * torch.rand(2, 3, 2, generator=g)
    ext, intr = encoding_to_camera(enc, (448, 592))
    out.update(pose_enc=enc, extrinsics=ext, intrinsics=intr)
    save_file(out, str(HERE / "omega_reference.safetensors"))
    print({k: tuple(v.shape) for k, v in out.items()})


if __name__ == "__main__":
    main()
