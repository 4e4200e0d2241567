"""Reply buttons as Discord components that keep working after a restart.

Their custom ids are the conversation's callback data (`v1:<action>:<arg>[:<owner>]`, see
`bot.replies`), matched by a `DynamicItem` template, so a press on any message of ours,
however old, reaches the adapter's `on_button`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import discord

from adapters.discord.client import AvatarClient
from bot.replies import Action, Button

#: Discord's limits: buttons per row, rows per message.
ROW_WIDTH = 5
MAX_ROWS = 5
#: Any version matches, so a button from an older release is answered ("no longer works").
CUSTOM_ID_TEMPLATE = r"v[0-9]{1,3}:[A-Za-z0-9_:-]{1,90}"


class JobButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=CUSTOM_ID_TEMPLATE):
    """A button whose custom id is conversation callback data; answered after restarts."""

    def __init__(self, custom_id: str, label: str = "…", style: discord.ButtonStyle | None = None):
        super().__init__(
            discord.ui.Button(
                label=label[:80] or "…",
                custom_id=custom_id,
                style=style or discord.ButtonStyle.secondary,
            )
        )

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[discord.Client],
        item: discord.ui.Item[Any],
        match: Any,
        /,
    ) -> JobButton:
        label = getattr(item, "label", None) or "…"
        return cls(str(match.string), label)

    async def callback(self, interaction: discord.Interaction[discord.Client]) -> None:
        client = interaction.client
        if isinstance(client, AvatarClient):
            await client.adapter.on_button(interaction, self.item.custom_id or "")


def make_view(buttons: Sequence[Button]) -> discord.ui.View | None:
    if not buttons:
        return None
    view = discord.ui.View(timeout=None)
    for i, button in enumerate(buttons[: ROW_WIDTH * MAX_ROWS]):
        item = JobButton(button.data, button.label, _button_style(button.action))
        item.row = min(i // ROW_WIDTH, MAX_ROWS - 1)
        view.add_item(item)
    return view


def _button_style(action: Action) -> discord.ButtonStyle:
    if action in (Action.FORGET, Action.CANCEL):
        return discord.ButtonStyle.danger
    if action in (Action.MORE, Action.PICK):
        return discord.ButtonStyle.primary
    return discord.ButtonStyle.secondary
