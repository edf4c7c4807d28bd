from . import backbones  # noqa: F401  (registration)
from .convert import convert_to_domino  # noqa: F401
from .domain_context import current_domain_embeddings, domain_embedding_context  # noqa: F401
from .domino_norm import DominoNorm  # noqa: F401
from .segmentor import DomainAwareEncoderDecoder  # noqa: F401
from .style import MixStyle  # noqa: F401  (registration)
