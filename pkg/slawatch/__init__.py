"""slawatch: the generated gRPC stubs (`slawatch.v1`) and a typed client over them."""

from pathlib import Path

from slawatch.client import AlertWatch, SlawatchClient
from slawatch.metadata import RESUME_METADATA_KEY

# VERSION is the one place the version is written; both distributions' metadata read it.
__version__ = (Path(__file__).parent / "VERSION").read_text().strip()

__all__ = ["RESUME_METADATA_KEY", "AlertWatch", "SlawatchClient", "__version__"]
