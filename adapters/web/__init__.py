"""Web chat adapter: a local messaging-style page served over aiohttp."""
