"""VGGT-Ω checkpoint loading on synthetic files written with the official key names."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch.testing import assert_close

from vggt_uncertainty_ros.errors import CheckpointError
from vggt_uncertainty_ros.model import VGGTOmega
from vggt_uncertainty_ros.model.omega import checkpoint as ckpt

GOLDEN_OMEGA = Path(__file__).resolve().parents[2].parent / "shared" / "golden_omega"


def _official_like(seed: int = 5) -> dict[str, torch.Tensor]:
    """A tiny state_dict with the official names, plus the heads the official file also holds."""
    model = VGGTOmega("tiny")
    g = torch.Generator().manual_seed(seed)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for k, v in state.items():
        if k.endswith(("weight", "bias", "gamma", "token")) and v.is_floating_point():
            v.add_(0.01 * torch.randn(v.shape, generator=g))
    state["dense_head.proj.weight"] = torch.randn(4, 4, generator=g)
    state["text_alignment_head.fc.bias"] = torch.randn(3, generator=g)
    return state


@pytest.fixture(scope="module")
def state():
    return _official_like()


def _check_loaded(model, state):
    assert isinstance(model, VGGTOmega) and not model.training
    loaded = model.state_dict()
    assert set(loaded) == {k for k in state if not k.startswith(ckpt.DROPPED_PREFIXES)}
    for k, v in loaded.items():
        assert torch.equal(v, state[k]), k
    assert not any(p.requires_grad for p in model.parameters())
    out = model(torch.rand(1, 2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    assert torch.isfinite(out.pose_enc).all()


def test_pt_plain_and_wrapped(tmp_path, state):
    torch.save(state, tmp_path / "vggt_omega_1b_512.pt")
    _check_loaded(ckpt.load_omega(tmp_path / "vggt_omega_1b_512.pt"), state)
    torch.save({"model": state}, tmp_path / "wrapped.pt")
    _check_loaded(ckpt.load_omega(str(tmp_path / "wrapped.pt")), state)
    # a directory holding an official file name
    _check_loaded(ckpt.load_omega(tmp_path), state)


def test_safetensors(tmp_path, state):
    save_file(state, str(tmp_path / "model.safetensors"))
    _check_loaded(ckpt.load_omega(tmp_path / "model.safetensors"), state)


def test_hugging_face_id_through_a_local_fake(tmp_path, state, monkeypatch):
    import huggingface_hub

    torch.save(state, tmp_path / "vggt_omega_1b_416_reproduce.pt")
    torch.save(state, tmp_path / "vggt_omega_1b_512.pt")
    calls = []

    def fake_download(repo_id, filename, **kwargs):
        calls.append((repo_id, filename))
        if not (tmp_path / filename).is_file():
            raise FileNotFoundError(f"404 {repo_id}/{filename}")
        return str(tmp_path / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    _check_loaded(ckpt.load_omega("facebook/VGGT-Omega"), state)
    _check_loaded(ckpt.load_omega("facebook/VGGT-Omega:vggt_omega_1b_416_reproduce.pt"), state)
    assert calls == [
        ("facebook/VGGT-Omega", "vggt_omega_1b_512.pt"),
        ("facebook/VGGT-Omega", "vggt_omega_1b_416_reproduce.pt"),
    ]
    with pytest.raises(CheckpointError, match=r"facebook/VGGT-Omega:missing.pt.*gated"):
        ckpt.load_omega("facebook/VGGT-Omega:missing.pt")


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_truncated_files_name_the_file(tmp_path, state, suffix):
    path = tmp_path / f"cut{suffix}"
    if suffix == ".pt":
        torch.save(state, path)
    else:
        save_file(state, str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(CheckpointError, match=rf"{path.name}.*truncated"):
        ckpt.load_omega(path)


def test_mismatched_files_name_the_first_offending_keys(tmp_path, state):
    bad = dict(state)
    del bad["camera_head.trunk_norm.weight"]
    bad["aggregator.register_token"] = torch.zeros(1, 2, 3, 64)
    bad["point_head.extra"] = torch.zeros(2)
    save_file(bad, str(tmp_path / "bad.safetensors"))
    with pytest.raises(CheckpointError) as info:
        ckpt.load_omega(tmp_path / "bad.safetensors")
    text = str(info.value)
    assert "bad.safetensors" in text
    assert "missing keys: camera_head.trunk_norm.weight" in text
    assert "unexpected keys: point_head.extra" in text
    assert "aggregator.register_token (1, 2, 3, 64) != (1, 2, 4, 64)" in text
    # a buffer is part of the strict set too
    no_mask = {k: v for k, v in state.items() if not k.endswith("frame_blocks.0.attn.qkv.bias_mask")}
    torch.save(no_mask, tmp_path / "no_mask.pt")
    with pytest.raises(
        CheckpointError, match=r"no_mask.pt.*missing keys: aggregator.frame_blocks.0.attn.qkv.bias_mask"
    ):
        ckpt.load_omega(tmp_path / "no_mask.pt")


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_pickle_with_code_is_refused_and_not_run(tmp_path, state):
    marker = tmp_path / "marker.txt"
    torch.save({"model": state, "payload": _Exploit(marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="evil.pt"):
        ckpt.load_omega(tmp_path / "evil.pt")
    assert not marker.exists()


def test_missing_and_bad_sources(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        ckpt.load_omega(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="holds none of"):
        ckpt.load_omega(tmp_path)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="junk.pt"):
        ckpt.load_omega(tmp_path / "junk.pt")


def test_official_full_size_names_and_shapes_pass_the_strict_check():
    rows = [r.split("\t") for r in (GOLDEN_OMEGA / "vggt_omega_1b_keys.tsv").read_text().splitlines()[1:]]
    found = {r[0]: tuple(int(x) for x in r[1].split("x")) for r in rows}
    assert any(k.startswith("dense_head.") for k in found)
    expected = ckpt.expected_shapes("full")
    ckpt.check_omega_keys("official.pt", found, expected)
    assert len(expected) == 1351
    # buffers marked in the table are buffers of our model
    meta = VGGTOmega("full", init="meta")
    buffers = {k for k, _ in meta.named_buffers()} & set(meta.state_dict())
    assert {r[0] for r in rows if r[3] == "buffer" and not r[0].startswith("dense_head.")} == buffers
    found.pop("aggregator.rope_embed.periods")
    with pytest.raises(CheckpointError, match="missing keys: aggregator.rope_embed.periods"):
        ckpt.check_omega_keys("official.pt", found, expected)


def test_periods_come_from_the_file(tmp_path, state):
    changed = dict(state)
    changed["aggregator.rope_embed.periods"] = state["aggregator.rope_embed.periods"] * 2
    save_file(changed, str(tmp_path / "p.safetensors"))
    model = ckpt.load_omega(tmp_path / "p.safetensors")
    assert_close(model.aggregator.rope_embed.periods, changed["aggregator.rope_embed.periods"])


def test_resolution_follows_the_official_file_name(tmp_path, state):
    torch.save(state, tmp_path / "vggt_omega_1b_416_reproduce.pt")
    torch.save(state, tmp_path / "mine.pt")
    assert ckpt.load_omega(tmp_path / "vggt_omega_1b_416_reproduce.pt").config.image_resolution == 416
    # otherwise the preset's (these synthetic files are tiny: 128; full size: 512)
    assert ckpt.load_omega(tmp_path / "mine.pt").config.image_resolution == 128
    assert ckpt.load_omega("tiny").config.image_resolution == 128
