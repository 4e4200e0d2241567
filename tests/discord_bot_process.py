"""`avatarbot bot` as an operator runs it, with discord.py pointed at a fake Discord:
`python tests/discord_bot_process.py` with the settings in the environment and the fake's
base URL in FAKE_DISCORD_URL (http://127.0.0.1:PORT). Only the two base URLs differ
from production, as in the in-process tests (`tests.fake_discord.patched_discord`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import discord  # after the path is set
import yarl
from discord.gateway import DiscordWebSocket

from avatarbot.cli import main
from tests.fake_discord import API_PREFIX

if __name__ == "__main__":
    base = os.environ["FAKE_DISCORD_URL"]
    discord.http.Route.BASE = base + API_PREFIX
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(base.replace("http://", "ws://") + "/ws/")
    raise SystemExit(main(["bot"]))
