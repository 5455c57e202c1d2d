"""The wire format shared by the service, the client and the load generator.

Media types and headers (:mod:`.media`), the error codes with their HTTP statuses
(:mod:`.errors`), the ``.npy``/``.npz`` codecs of the binary batch route (:mod:`.codecs`) and
the checks on token sets (:mod:`.tokensets`). Only numpy and the standard library are
imported, so the client can use it without the server's dependencies.
"""

from __future__ import annotations

from .codecs import (
    NPY_MAGIC,
    DecodedTooLarge,
    DecodeError,
    decode_npy,
    decode_npz,
    encode_npy,
    encode_npz,
    npz_declared_bytes,
)
from .errors import ERROR_CODES, FALLBACK_CODE, ErrorCode, code_for_status, status_for
from .media import (
    JSON_MEDIA_TYPE,
    METRIC_HEADER,
    NPY_MEDIA_TYPE,
    NPZ_MEDIA_TYPE,
    TOOK_MS_HEADER,
    media_type,
)
from .tokensets import check_offsets, check_token_matrix, check_token_sets

__all__ = [
    "ERROR_CODES",
    "FALLBACK_CODE",
    "JSON_MEDIA_TYPE",
    "METRIC_HEADER",
    "NPY_MAGIC",
    "NPY_MEDIA_TYPE",
    "NPZ_MEDIA_TYPE",
    "TOOK_MS_HEADER",
    "DecodeError",
    "DecodedTooLarge",
    "ErrorCode",
    "check_offsets",
    "check_token_matrix",
    "check_token_sets",
    "code_for_status",
    "decode_npy",
    "decode_npz",
    "encode_npy",
    "encode_npz",
    "media_type",
    "npz_declared_bytes",
    "status_for",
]
