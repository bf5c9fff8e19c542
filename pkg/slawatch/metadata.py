"""gRPC metadata keys shared by the slawatch server and its clients."""

from __future__ import annotations

# Sent by the server as initial metadata of every WatchAlerts stream: the alert id the stream
# starts after. A client that loses a live-only stream before its first alert resumes from it.
RESUME_METADATA_KEY = "slawatch-resume-after"
