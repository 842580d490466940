"""Checkpoint loading: official key names, both formats, strictness and precise errors."""

from __future__ import annotations

import gc
import json
import struct

import pytest
import torch
from safetensors.torch import save_file

from vggt_uncertainty_ros.errors import CheckpointError
from vggt_uncertainty_ros.model import backbone_identity, load_backbone
from vggt_uncertainty_ros.model import checkpoint as ckpt

EXTRA_HEADS = {
    "point_head.scratch.layer1_rn.weight": (4, 4),
    "depth_head.projects.0.bias": (8,),
    "track_head.x.weight": (2, 3),
}


def _tiny_state(with_heads=True):
    state = {k: v.clone() for k, v in load_backbone("tiny").state_dict().items()}
    if with_heads:
        state.update({k: torch.randn(shape) for k, shape in EXTRA_HEADS.items()})
    return state


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_round_trip_drops_other_heads(tmp_path, fmt):
    state = _tiny_state()
    path = tmp_path / f"model.{fmt}"
    save_file(state, str(path)) if fmt == "safetensors" else torch.save(state, path)
    model = load_backbone(str(path))
    assert model.config.name == "tiny"
    assert backbone_identity(model) == backbone_identity(load_backbone("tiny"))
    # a directory holding the file works too
    assert backbone_identity(load_backbone(tmp_path)) == backbone_identity(model)


def test_hugging_face_id_uses_hub_download(tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    save_file(_tiny_state(), str(path))
    calls = []

    def fake_download(repo_id, filename):
        calls.append((repo_id, filename))
        if filename != "model.safetensors":
            raise FileNotFoundError(filename)
        return str(path)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    model = load_backbone("facebook/VGGT-1B")
    assert calls == [("facebook/VGGT-1B", "model.safetensors")]
    assert model.config.name == "tiny"

    def offline(repo_id, filename):
        raise OSError("offline")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(CheckpointError, match=r"facebook/VGGT-1B: could not download.*model\.pt"):
        load_backbone("facebook/VGGT-1B")


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="nothing_here.safetensors: no such file"):
        load_backbone(str(tmp_path / "nothing_here.safetensors"))
    with pytest.raises(CheckpointError, match="directory holds none"):
        load_backbone(tmp_path)


def test_truncated_safetensors_names_file_and_first_keys(tmp_path):
    path = tmp_path / "cut.safetensors"
    save_file(_tiny_state(with_heads=False), str(path))
    header_len = struct.unpack("<Q", path.read_bytes()[:8])[0]
    header = json.loads(path.read_bytes()[8 : 8 + header_len])
    header.pop("__metadata__", None)
    last = max(header, key=lambda k: header[k]["data_offsets"][1])
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(CheckpointError, match=rf"cut\.safetensors: truncated .*first: {last}"):
        load_backbone(str(path))
    path.write_bytes(data[:5])
    with pytest.raises(CheckpointError, match=r"cut\.safetensors: truncated"):
        load_backbone(str(path))


def test_truncated_pt_names_file(tmp_path):
    path = tmp_path / "cut.pt"
    torch.save(_tiny_state(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pt: cannot read PyTorch checkpoint"):
        load_backbone(str(path))


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_mismatched_files_name_first_offending_keys(tmp_path, fmt):
    def save(state, name):
        path = tmp_path / f"{name}.{fmt}"
        save_file(state, str(path)) if fmt == "safetensors" else torch.save(state, path)
        return str(path)

    state = _tiny_state()
    missing = dict(state)
    del missing["camera_head.pose_branch.fc2.bias"]
    with pytest.raises(CheckpointError, match=r"missing\.\w+: .*1 missing keys: camera_head\.pose_branch\.fc2\.bias"):
        load_backbone(save(missing, "missing"))
    wrong = dict(state)
    wrong["aggregator.camera_token"] = torch.zeros(1, 2, 1, 65)
    with pytest.raises(
        CheckpointError, match=r"shape mismatches: aggregator\.camera_token \(1, 2, 1, 65\) != \(1, 2, 1, 64\)"
    ):
        ckpt.load_vggt_state_dict(save(wrong, "wrong"), config="tiny")
    extra = dict(state)
    extra["aggregator.frame_blocks.7.norm1.weight"] = torch.ones(64)
    with pytest.raises(CheckpointError, match=r"unexpected keys: aggregator\.frame_blocks\.7\.norm1\.weight"):
        ckpt.load_vggt_state_dict(save(extra, "extra"), config="tiny")


def _write_sparse_safetensors(path, shapes: dict[str, tuple[int, ...]], values: dict[str, float]) -> None:
    """A full-size F32 safetensors file whose data is a hole (zeros) except first elements in ``values``."""
    header, offset = {}, 0
    for key, shape in shapes.items():
        n = 4 * int(torch.Size(shape).numel())
        header[key] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(blob)) + blob)
        for key, value in values.items():
            fh.seek(8 + len(blob) + header[key]["data_offsets"][0])
            fh.write(struct.pack("<f", value))
        fh.truncate(8 + len(blob) + offset)


def test_full_size_official_names_both_formats(tmp_path, official_keys):
    """A synthetic checkpoint with all 1797 official keys (all heads) loads strictly into the full model."""
    shapes = {k: shape for k, (shape, _sub) in official_keys.items()}
    probes = {"aggregator.camera_token": 0.5, "camera_head.pose_branch.fc2.bias": -2.0, "point_head.norm.weight": 9.0}
    st = tmp_path / "model.safetensors"
    _write_sparse_safetensors(st, shapes, probes)
    model = load_backbone(str(st))
    sd = model.state_dict()
    assert model.config.name == "full" and len(sd) == 1279
    assert sd["aggregator.camera_token"].flatten()[0].item() == 0.5
    assert sd["camera_head.pose_branch.fc2.bias"][0].item() == -2.0
    assert sd["aggregator.global_blocks.23.mlp.fc2.weight"].abs().sum().item() == 0.0
    del model, sd
    gc.collect()
    # model.pt: one broadcast scalar per key (tiny file, official names and shapes)
    pt = tmp_path / "model.pt"
    torch.save({k: torch.full((1,), float(i)).expand(shape) for i, (k, shape) in enumerate(shapes.items())}, pt)
    model = load_backbone(str(pt))
    index = {k: i for i, k in enumerate(shapes)}
    for key in (
        "aggregator.patch_embed.pos_embed",
        "aggregator.frame_blocks.11.attn.q_norm.weight",
        "camera_head.trunk.3.ls2.gamma",
    ):
        param = model.state_dict()[key]
        assert param.is_contiguous() and torch.all(param == index[key])
    del model
    gc.collect()
    # a full-size file missing one official key is refused, naming it
    del shapes["aggregator.global_blocks.5.attn.k_norm.bias"]
    bad = tmp_path / "bad.safetensors"
    _write_sparse_safetensors(bad, shapes, {})
    with pytest.raises(
        CheckpointError, match=r"bad\.safetensors: .*missing keys: aggregator\.global_blocks\.5\.attn\.k_norm\.bias"
    ):
        load_backbone(str(bad))
