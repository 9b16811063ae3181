"""Every kind of automated check, by the name a checks file gives it."""

from __future__ import annotations

from . import (
    cors,
    dns,
    elevenlabs,
    github,
    google_ai,
    http,
    openai,
    statuspage,
    supabase,
    tls,
    twilio,
    webhook,
)
from .base import Kind

REGISTRY: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        supabase.KIND,
        twilio.KIND,
        elevenlabs.KIND,
        openai.KIND,
        google_ai.KIND,
        github.KIND,
        statuspage.KIND,
        http.KIND,
        webhook.KIND,
        tls.KIND,
        dns.KIND,
        cors.KIND,
    )
}
