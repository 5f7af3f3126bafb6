"""Inception-ResNet-v1 (Szegedy et al. 2016) as shipped by facenet-pytorch.

``facenet-vggface2`` loads the VGGFace2-trained weights (David Sandberg's
facenet, converted by Tim Esler) from the torch hub cache; they are downloaded
only when asked (``download=True`` or ``ASPL_DOWNLOAD_WEIGHTS=1``).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .registry import MissingWeightsError, register_backbone
from .torch_base import TorchEmbedder, load_state_dict_file, torch_home

VGGFACE2_FILE = "20180402-114759-vggface2.pt"
VGGFACE2_URL = "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/" + VGGFACE2_FILE


def vggface2_weights_path() -> Path:
    """Where the VGGFace2 weights are looked for: ``$TORCH_HOME/checkpoints/``."""
    return torch_home() / "checkpoints" / VGGFACE2_FILE


class _InceptionResnetV1Features(nn.Module):
    """facenet-pytorch's InceptionResnetV1 up to the 512-d bottleneck (no logits)."""

    def __init__(self, dropout_prob: float = 0.6):
        super().__init__()
        from facenet_pytorch import InceptionResnetV1

        self.body = InceptionResnetV1(pretrained=None, classify=False, dropout_prob=dropout_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.body
        x = b.conv2d_1a(x); x = b.conv2d_2a(x); x = b.conv2d_2b(x); x = b.maxpool_3a(x)
        x = b.conv2d_3b(x); x = b.conv2d_4a(x); x = b.conv2d_4b(x)
        x = b.repeat_1(x); x = b.mixed_6a(x); x = b.repeat_2(x); x = b.mixed_7a(x)
        x = b.repeat_3(x); x = b.block8(x)
        x = b.avgpool_1a(x); x = b.dropout(x)
        x = b.last_linear(x.view(x.shape[0], -1))
        return b.last_bn(x)


_FACENET_META = dict(
    family="inception_resnet",
    input_size=160,
    embedding_dim=512,
    mean=(0.5, 0.5, 0.5),
    std=(128 / 255, 128 / 255, 128 / 255),  # facenet's fixed_image_standardization
    paper="Szegedy et al., Inception-v4, Inception-ResNet and the Impact of Residual Connections, AAAI 2017; "
    "Schroff et al., FaceNet, CVPR 2015",
    license="code MIT (facenet-pytorch); VGGFace2 weights: see the VGGFace2 dataset terms",
    trainable=True,
)


@register_backbone(name="facenet-vggface2", weights_source=f"$TORCH_HOME/checkpoints/{VGGFACE2_FILE} (download: {VGGFACE2_URL})",
                   extra={"params_m": 23.5, "gmacs": 1.42, "weights": f"file:$TORCH_HOME/checkpoints/{VGGFACE2_FILE}"},
                   **_FACENET_META)
def facenet_vggface2(device: str | None = None, weights: str | os.PathLike | None = None,
                     download: bool | None = None) -> TorchEmbedder:
    """InceptionResnetV1 with VGGFace2 weights from a local file or the hub cache."""
    from .registry import backbone_info

    net = _InceptionResnetV1Features()
    path = Path(weights) if weights else vggface2_weights_path()
    if download is None:
        download = os.environ.get("ASPL_DOWNLOAD_WEIGHTS", "") == "1"
    if not path.is_file() and download and not weights:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(VGGFACE2_URL, str(path), progress=True)
    how = (f"Download {VGGFACE2_URL} to that path, or run with ASPL_DOWNLOAD_WEIGHTS=1 on a machine that is online; "
           "'dlib-resnet' works offline.")
    if not path.is_file():
        raise MissingWeightsError("facenet-vggface2", str(path), how)
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("logits.")}
    net.body.load_state_dict(state, strict=False)
    return TorchEmbedder(net, backbone_info("facenet-vggface2"), device=device)


@register_backbone(name="inception-resnet-v1", weights_source="random initialisation (or a local file)",
                   extra={"params_m": 23.5, "gmacs": 1.42}, **_FACENET_META)
def inception_resnet_v1(device: str | None = None, weights: str | os.PathLike | None = None) -> TorchEmbedder:
    """InceptionResnetV1 from random initialisation (for fine-tuning/pretraining)."""
    from .registry import backbone_info

    net = _InceptionResnetV1Features()
    if weights:
        load_state_dict_file(net.body, weights, "inception-resnet-v1", "Pass an existing state-dict file.")
    return TorchEmbedder(net, backbone_info("inception-resnet-v1"), device=device)
