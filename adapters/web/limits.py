"""The web chat's rate limits: anonymous users cost nothing to create, so they are counted.

- Uploads: per identity (AVATARBOT_WEB_UPLOADS_PER_MINUTE) and per network address
  (AVATARBOT_WEB_UPLOADS_PER_IP_MINUTE), checked before the body is read.
- New identities (cookies) per network address and day
  (AVATARBOT_WEB_IDENTITIES_PER_IP_DAY): a fresh cookie is not a fresh daily quota.

An address is the client's IP (the forwarded one behind a trusted proxy, see
AVATARBOT_TRUSTED_PROXIES); IPv6 addresses count per /64, the block one subscriber gets.
Counters are keyed by an HMAC of the address with the installation's secret
(`Identities.address_tag`), so Redis never holds an IP address, and expire with their
window (`bot.rate_limits`).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv6Address, ip_address, ip_network

from bot.config import Settings
from bot.rate_limits import RateLimit

MINUTE, DAY = 60, 24 * 3600


@dataclass(frozen=True)
class WebLimits:
    uploads: RateLimit
    uploads_per_address: RateLimit
    identities_per_address: RateLimit

    @classmethod
    def from_settings(cls, settings: Settings) -> WebLimits:
        return cls(
            uploads=RateLimit("web-uploads", settings.web_uploads_per_minute, MINUTE),
            uploads_per_address=RateLimit(
                "web-uploads-net", settings.web_uploads_per_ip_minute, MINUTE
            ),
            identities_per_address=RateLimit(
                "web-new-ids-net", settings.web_identities_per_ip_day, DAY
            ),
        )


def network(address: str | None) -> str:
    """The address limits count against: an IPv4 address, an IPv6 /64, else as given."""
    try:
        ip = ip_address(address or "")
    except ValueError:
        return address or "unknown"
    if isinstance(ip, IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ip_network(f"{ip}/64", strict=False))
    return str(ip)
