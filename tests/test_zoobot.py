"""hf-galaxy convert-zoobot: timm ConvNeXt weights -> transformers ConvNextModel, checked against timm's maths.

timm is not importable here (it needs torchvision), so the test builds a state dict laid out exactly as timm's
``ConvNeXt`` saves it and computes the timm forward pass from it with plain torch ops, following
``timm/models/convnext.py`` (patch stem + LayerNorm2d; per stage an optional LayerNorm2d + 2x2 conv downsample;
blocks of 7x7 depthwise conv, LayerNorm, MLP with GELU, layer scale ``gamma``, residual; global average pool
and ``head.norm``).
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from hf_galaxy.cli import main
from hf_galaxy.models.zoobot import convert_timm_convnext, convnext_config_from_timm

DIMS, DEPTHS = (8, 16, 24, 32), (1, 2, 1, 1)


def timm_state_dict(
    conv_mlp: bool = False, layer_scale: bool = True, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Random weights under timm's ConvNeXt key names (num_classes=0: no head.fc, as Zoobot's encoders)."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=0.2):
        return torch.randn(*shape, generator=g) * scale

    sd = {"stem.0.weight": rnd(DIMS[0], 3, 4, 4), "stem.0.bias": rnd(DIMS[0])}
    sd["stem.1.weight"], sd["stem.1.bias"] = 1 + rnd(DIMS[0]), rnd(DIMS[0])
    for i, (dim, depth) in enumerate(zip(DIMS, DEPTHS)):
        if i:
            sd[f"stages.{i}.downsample.0.weight"] = 1 + rnd(DIMS[i - 1])
            sd[f"stages.{i}.downsample.0.bias"] = rnd(DIMS[i - 1])
            sd[f"stages.{i}.downsample.1.weight"] = rnd(dim, DIMS[i - 1], 2, 2)
            sd[f"stages.{i}.downsample.1.bias"] = rnd(dim)
        for j in range(depth):
            b = f"stages.{i}.blocks.{j}."
            sd[b + "conv_dw.weight"], sd[b + "conv_dw.bias"] = rnd(dim, 1, 7, 7), rnd(dim)
            sd[b + "norm.weight"], sd[b + "norm.bias"] = 1 + rnd(dim), rnd(dim)
            tail = (1, 1) if conv_mlp else ()
            sd[b + "mlp.fc1.weight"], sd[b + "mlp.fc1.bias"] = rnd(4 * dim, dim, *tail), rnd(4 * dim)
            sd[b + "mlp.fc2.weight"], sd[b + "mlp.fc2.bias"] = rnd(dim, 4 * dim, *tail), rnd(dim)
            if layer_scale:
                sd[b + "gamma"] = 0.5 + rnd(dim)
    sd["head.norm.weight"], sd["head.norm.bias"] = 1 + rnd(DIMS[-1]), rnd(DIMS[-1])
    return sd


def _ln2d(x, w, b):  # timm LayerNorm2d: over channels of NCHW, eps 1e-6
    return F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), w, b, 1e-6).permute(0, 3, 1, 2)


def timm_forward(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """timm ConvNeXt ``forward_head(forward_features(x), pre_logits=True)`` from a state dict."""
    x = _ln2d(
        F.conv2d(x, sd["stem.0.weight"], sd["stem.0.bias"], stride=4), sd["stem.1.weight"], sd["stem.1.bias"]
    )
    for i, depth in enumerate(DEPTHS):
        if i:
            d = f"stages.{i}.downsample."
            x = _ln2d(x, sd[d + "0.weight"], sd[d + "0.bias"])
            x = F.conv2d(x, sd[d + "1.weight"], sd[d + "1.bias"], stride=2)
        for j in range(depth):
            b = f"stages.{i}.blocks.{j}."
            y = F.conv2d(x, sd[b + "conv_dw.weight"], sd[b + "conv_dw.bias"], padding=3, groups=x.shape[1])
            y = y.permute(0, 2, 3, 1)
            y = F.layer_norm(y, (y.shape[-1],), sd[b + "norm.weight"], sd[b + "norm.bias"], 1e-6)
            y = F.linear(y, sd[b + "mlp.fc1.weight"].flatten(1), sd[b + "mlp.fc1.bias"])
            y = F.linear(F.gelu(y), sd[b + "mlp.fc2.weight"].flatten(1), sd[b + "mlp.fc2.bias"])
            if b + "gamma" in sd:
                y = y * sd[b + "gamma"]
            x = x + y.permute(0, 3, 1, 2)
    pooled = x.mean(dim=(2, 3))
    return F.layer_norm(pooled, (pooled.shape[-1],), sd["head.norm.weight"], sd["head.norm.bias"], 1e-6)


@pytest.mark.parametrize("conv_mlp", [False, True], ids=["linear-mlp", "conv-mlp"])
@pytest.mark.parametrize("layer_scale", [True, False], ids=["layer-scale", "no-layer-scale"])
def test_converted_model_computes_timms_features(conv_mlp, layer_scale) -> None:
    sd = timm_state_dict(conv_mlp=conv_mlp, layer_scale=layer_scale)
    model = convert_timm_convnext(sd)
    assert list(model.config.hidden_sizes) == list(DIMS) and list(model.config.depths) == list(DEPTHS)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = model(pixel_values=x).pooler_output
    torch.testing.assert_close(got, timm_forward(sd, x), rtol=1e-4, atol=1e-5)


def test_wrapped_prefixes_and_classifier_heads_are_handled() -> None:
    sd = {"encoder." + k: v for k, v in timm_state_dict().items()}
    sd["encoder.head.fc.weight"], sd["encoder.head.fc.bias"] = torch.zeros(5, DIMS[-1]), torch.zeros(5)
    model = convert_timm_convnext(sd)
    x = torch.randn(1, 3, 32, 32)
    plain = {k[len("encoder.") :]: v for k, v in sd.items()}
    torch.testing.assert_close(
        model(pixel_values=x).pooler_output, timm_forward(plain, x), rtol=1e-4, atol=1e-5
    )


def test_greyscale_encoders_get_an_averaging_rgb_stem(tmp_path) -> None:
    sd = timm_state_dict()
    grey = {**sd, "stem.0.weight": sd["stem.0.weight"][:, :1] * 3}
    model = convert_timm_convnext(grey)
    assert model.config.num_channels == 3
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        got = model(pixel_values=x.repeat(1, 3, 1, 1)).pooler_output
    reference = timm_forward({**grey, "stem.0.weight": grey["stem.0.weight"]}, x)
    torch.testing.assert_close(got, reference, rtol=1e-4, atol=1e-5)


def test_torch_pickles_are_read_and_objects_in_them_refused(tmp_path) -> None:
    from hf_galaxy.models.zoobot import read_weights

    sd = timm_state_dict()
    torch.save({"state_dict": sd}, tmp_path / "pytorch_model.bin")
    assert set(read_weights(tmp_path)) == set(sd)
    torch.save({"state_dict": sd, "hyper": object()}, tmp_path / "lightning.ckpt")
    with pytest.raises(ValueError, match="not a plain torch state dict"):
        read_weights(tmp_path / "lightning.ckpt")


def test_unsupported_layouts_are_refused_by_name() -> None:
    sd = timm_state_dict()
    with pytest.raises(ValueError, match="overlap"):
        convnext_config_from_timm({**sd, "stem.2.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="GRN"):
        convnext_config_from_timm({**sd, "stages.0.blocks.0.mlp.grn.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="no stem"):
        convnext_config_from_timm({"conv1.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="no place in ConvNextModel"):
        convert_timm_convnext({**sd, "stages.0.blocks.0.extra.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="pre_logits"):
        convnext_config_from_timm({**sd, "head.pre_logits.fc.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"stages\.2\.blocks\.0\.conv_dw: 5x5"):
        convnext_config_from_timm({**sd, "stages.2.blocks.0.conv_dw.weight": torch.zeros(DIMS[2], 1, 5, 5)})


def test_convert_zoobot_command_writes_a_checkpoint_the_recipes_and_embed_use(tmp_path, capsys) -> None:
    from safetensors.torch import save_file
    from transformers import AutoModel, AutoModelForImageClassification

    src = tmp_path / "zoobot-encoder-convnext_tiny"
    src.mkdir()
    sd = timm_state_dict(conv_mlp=True)
    save_file(sd, str(src / "model.safetensors"))
    timm_cfg = {
        "architecture": "convnext_nano",
        "num_classes": 0,
        "pretrained_cfg": {
            "input_size": [3, 64, 64],
            "mean": [0.5, 0.5, 0.5],
            "std": [0.25, 0.25, 0.25],
            "crop_pct": 1.0,
        },
    }
    (src / "config.json").write_text(json.dumps(timm_cfg))
    out = tmp_path / "converted"
    assert main(["convert-zoobot", str(src), "--output_dir", str(out)]) == 0
    model = AutoModel.from_pretrained(out).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(
            model(pixel_values=x).pooler_output, timm_forward(sd, x), rtol=1e-4, atol=1e-5
        )
    processor = json.loads((out / "preprocessor_config.json").read_text())
    assert processor["image_mean"] == [0.5] * 3 and processor["size"] == {"shortest_edge": 64}
    assert model.config.hf_galaxy_pretraining["architecture"] == "convnext_nano"
    card = (out / "README.md").read_text()
    assert "pipeline_tag: image-feature-extraction" in card and "Zoobot" in card and "JOSS" in card
    assert "pool=True" in card and "mean of the patch tokens" not in card  # a CNN: the global average pool
    classifier = AutoModelForImageClassification.from_pretrained(out, num_labels=3)
    torch.testing.assert_close(classifier.convnext.embeddings.patch_embeddings.weight, sd["stem.0.weight"])
    # hf-galaxy embed uses its global-average-pool features
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.new("RGB", (64, 64), (90, 60, 30)).save(folder / "a.png")
    assert main(["embed", "--model", str(out), str(folder), "--output_dir", str(tmp_path / "emb")]) == 0
    assert f"1 embeddings of dimension {DIMS[-1]}" in capsys.readouterr().out


def test_convert_zoobot_errors_are_one_line(tmp_path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["convert-zoobot", str(tmp_path / "empty"), "--output_dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no timm weights" in err and "Traceback" not in err
