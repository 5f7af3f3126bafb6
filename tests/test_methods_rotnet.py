"""RotNet: rotation prediction on real, unlabelled faces."""
import pytest
import torch

from aspl.methods.rotnet import RotNetSettings, rotate_batch, rotnet_pretrain
from models import backbone_info, create_backbone
from tests.methods_helpers import real_crops


def test_rotate_batch_labels_each_quarter_turn():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    xr, y = rotate_batch(x)
    assert xr.shape == (8, 3, 4, 4) and y.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert torch.equal(xr[2], torch.rot90(x[0], 1, (1, 2)))


def test_rotnet_learns_to_predict_rotations_of_real_faces(lfw_dev):
    fc = real_crops(lfw_dev)
    kw = backbone_info("simplenet-v1-050").extra["test_kwargs"]
    emb = create_backbone("simplenet-v1-050", device="cpu", **kw)
    res = rotnet_pretrain(emb, fc.crops, RotNetSettings(epochs=10, lr=3e-3, batch_size=10))
    assert res.losses[-1] < res.losses[0]
    assert max(res.accuracy[-2:]) > 0.4  # chance is 0.25
    assert not emb.training
    with pytest.raises(ValueError, match="at least 2 faces"):
        rotnet_pretrain(emb, fc.crops[:1])
