"""slawatch: the generated gRPC stubs (`slawatch.v1`) and a typed client over them."""

from slawatch.client import AlertWatch, SlawatchClient
from slawatch.errors import error_reason, resume_point, retry_delay
from slawatch.metadata import RESUME_METADATA_KEY

__all__ = [
    "RESUME_METADATA_KEY",
    "AlertWatch",
    "SlawatchClient",
    "error_reason",
    "resume_point",
    "retry_delay",
]
