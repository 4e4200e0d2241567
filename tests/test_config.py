from __future__ import annotations

import logging

import pytest

from bot.config import ConfigError, load_settings


def test_defaults_without_environment() -> None:
    s = load_settings({})
    assert s.redis_url is None
    assert s.backend == "cpu"
    assert s.daily_quota == 20


def test_reads_well_known_and_prefixed_names() -> None:
    s = load_settings(
        {
            "REDIS_URL": "redis://example:6380/2",
            "TELEGRAM_BOT_TOKEN": "123:SECRET",
            "AVATARBOT_BACKEND": "diffusers",
            "AVATARBOT_DAILY_QUOTA": "7",
            "AVATARBOT_LOG_LEVEL": "debug",
            "AVATARBOT_OUTPUT_SIZE": "768",
        }
    )
    assert s.output_size == 768
    assert s.redis_url == "redis://example:6380/2"
    assert s.telegram_bot_token is not None
    assert s.telegram_bot_token.get_secret_value() == "123:SECRET"
    assert s.backend == "diffusers"
    assert s.daily_quota == 7
    assert s.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"AVATARBOT_DAILY_QUOTA": "lots"}, "AVATARBOT_DAILY_QUOTA"),
        ({"AVATARBOT_BACKEND": "gpu-magic"}, "AVATARBOT_BACKEND"),
        ({"REDIS_URL": "http://nope"}, "REDIS_URL"),
        ({"AVATARBOT_WEB_PORT": "70000"}, "AVATARBOT_WEB_PORT"),
        ({"AVATARBOT_OUTPUT_SIZE": "600"}, "AVATARBOT_OUTPUT_SIZE"),
    ],
)
def test_malformed_setting_names_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings(env)


def test_process_environment_does_not_leak_into_explicit_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AVATARBOT_DAILY_QUOTA", "99")
    assert load_settings({}).daily_quota == 20
    assert load_settings(env_file=None).daily_quota == 99


def test_secrets_never_in_repr_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    s = load_settings({"TELEGRAM_BOT_TOKEN": "999:TOPSECRET", "DISCORD_BOT_TOKEN": "DISCSECRET"})
    with caplog.at_level(logging.INFO):
        logging.getLogger("t").info("settings: %s %r", s, s)
    text = repr(s) + str(s) + caplog.text + s.model_dump_json()
    assert "TOPSECRET" not in text
    assert "DISCSECRET" not in text
