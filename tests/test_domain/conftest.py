import os

os.environ.setdefault('HF_HUB_OFFLINE', '1')

import pytest  # noqa: E402
import torch  # noqa: E402
from mmseg.registry import TRANSFORMS  # noqa: E402

from domino_seg.domain.embedder import inputs_transform_cfg  # noqa: E402


@pytest.fixture
def embed_image():
    """Embeds one decoded (BGR) image as training does: the DomainEmbeddingInputs step (a data
    worker's part), then the DomainEmbedder (the main process's)."""
    def embed(embedder, img, **results):
        inputs = TRANSFORMS.build(inputs_transform_cfg(embedder.generator_cfg))
        prepared = inputs({'img': img, 'img_path': 'a.png', **results})
        return embedder([prepared], torch.device('cpu'))[0]
    return embed
