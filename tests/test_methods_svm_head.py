"""CNN-SVM head: squared-hinge L2-SVM loss as a fine-tuning option."""
import copy

import numpy as np
import pytest
import torch

from aspl.finetune import FineTuneSettings, finetune_embedder, squared_hinge_loss
from models import backbone_info, create_backbone
from tests.methods_helpers import real_crops


def test_squared_hinge_loss_values():
    s = torch.tensor([[2.0, -1.0, 0.5], [0.0, 0.0, 0.0]])
    loss = squared_hinge_loss(s, torch.tensor([0, 2]))
    # row 0 (true 2.0): margins 3.0 and 1.5 are met -> 0; row 1 (all equal): mean of two terms (1 - 0)^2
    assert loss.tolist() == pytest.approx([0.0, 1.0])
    # Shifting every score by the same amount changes nothing: no reward for collapse.
    assert squared_hinge_loss(s - 5.0, torch.tensor([0, 2])).tolist() == pytest.approx([0.0, 1.0])


def test_default_loss_is_softmax_and_bad_losses_are_refused():
    assert FineTuneSettings().loss == "softmax"
    with pytest.raises(ValueError, match="valid choices: softmax, svm"):
        FineTuneSettings(loss="hinge")


def test_svm_finetuning_reduces_its_loss_on_real_faces(lfw_dev):
    fc = real_crops(lfw_dev)
    kw = backbone_info("overfeat-fast-025").extra["test_kwargs"]
    emb = create_backbone("overfeat-fast-025", device="cpu", **kw)
    soft = copy.deepcopy(emb)
    res = finetune_embedder(emb, list(fc.crops), fc.y, None, FineTuneSettings(epochs=5, lr=0.05, batch_size=10,
                                                                            loss="svm"))
    assert not res.skipped and res.losses[-1] < res.losses[0]
    res2 = finetune_embedder(soft, list(fc.crops), fc.y, None, FineTuneSettings(epochs=1, lr=0.05, batch_size=10))
    assert np.isfinite(res2.losses).all()
