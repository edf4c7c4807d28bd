"""Foundation-model backbones registered in mmseg's MODELS (see docs/configs.md, "Backbones")."""
from .clip import OpenCLIPResNet, OpenCLIPVisionTransformer  # noqa: F401
from .dinov2 import DINOv2VisionTransformer  # noqa: F401
from .efficientnet import EfficientNetLite  # noqa: F401
