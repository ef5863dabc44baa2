import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from service.auth import ApiKeys, AuthConfigError, bearer_token, configured_api_keys, hash_key
from service.settings import Settings, SettingsError


def test_hash_is_sha256_of_the_key_with_its_scheme() -> None:
    assert hash_key("secret") == "sha256:" + hashlib.sha256(b"secret").hexdigest()


def test_hash_command_reads_the_key_on_stdin() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "service.auth"],
        input="my-key\n",
        capture_output=True,
        text=True,
        check=True,
    )
    assert completed.stdout.strip() == hash_key("my-key")


def test_every_configured_key_is_accepted_during_a_rotation() -> None:
    keys = ApiKeys((hash_key("old"), hash_key("new")))
    old_id, new_id = keys.identify("old"), keys.identify("new")
    assert old_id and new_id and old_id != new_id
    assert keys.identify("wrong") is None
    assert keys.identify("") is None
    assert "old" not in old_id and old_id in hash_key("old")  # an id from the hash, not the key


@pytest.mark.parametrize(
    "bad", ["md5:abc", "sha256:xyz", "sha256:" + "g" * 64, "plaintext-key", hash_key("k")[:-1]]
)
def test_malformed_hashes_refuse_to_load(bad: str) -> None:
    with pytest.raises(AuthConfigError, match="#2"):
        ApiKeys((hash_key("fine"), bad))


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("BEARER abc", "abc"),
        ("Bearer    abc", "abc"),  # 1*SP
        ("Bearer a-b.c_d~e+f/g==", "a-b.c_d~e+f/g=="),  # the whole b64token alphabet
        ("Bearer\tabc", None),  # SP only, no tab
        ("Bearer abc ", None),
        ("Bearer abc def", None),
        ("Bearer abc,x=y", None),
        ("Bearer ab=c", None),  # padding only at the end
        ("Bearer ab\u00e9", None),
        ("Bearerabc", None),
        ("Basic abc", None),
        ("Bearer ", None),
        ("abc", None),
        (None, None),
    ],
)
def test_bearer_token_parsing_follows_rfc_6750(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_settings_read_hashes_from_env_list_and_file(tmp_path: Path) -> None:
    hashes_file = tmp_path / "hashes"
    hashes_file.write_text(f"# rotated 2026-11\n{hash_key('b')}\n\n  {hash_key('c')}  \n")
    settings = Settings.from_env(
        {
            "MODERATION_API_KEY_HASHES": f"{hash_key('a')}, ",
            "MODERATION_API_KEY_HASHES_FILE": str(hashes_file),
            "MODERATION_MAX_INPUTS": "10",
        }
    )
    assert settings.api_key_hashes == (hash_key("a"), hash_key("b"), hash_key("c"))
    assert settings.max_inputs == 10
    assert not settings.auth_disabled


def test_auth_is_disabled_only_by_the_explicit_flag() -> None:
    assert Settings.from_env({"MODERATION_AUTH_DISABLED": "1"}).auth_disabled
    assert not Settings.from_env({"MODERATION_AUTH_DISABLED": "true"}).auth_disabled


def test_invalid_settings_name_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^MODERATION_MAX_INPUTS: Input should be greater"):
        Settings.from_env({"MODERATION_MAX_INPUTS": "0"})
    with pytest.raises(SettingsError, match="MODERATION_MAX_BODY_BYTES: Input should be a valid"):
        Settings.from_env({"MODERATION_MAX_BODY_BYTES": "2MB"})
    with pytest.raises(SettingsError, match="MODERATION_API_KEY_HASHES_FILE: cannot read"):
        Settings.from_env({"MODERATION_API_KEY_HASHES_FILE": str(tmp_path / "absent")})


def test_no_keys_is_an_error_unless_auth_is_explicitly_disabled() -> None:
    assert configured_api_keys(auth_disabled=True, hashes=()) is None
    assert len(configured_api_keys(auth_disabled=False, hashes=(hash_key("k"),)) or ()) == 1
    with pytest.raises(AuthConfigError, match="no API keys configured"):
        configured_api_keys(auth_disabled=False, hashes=())


@pytest.mark.parametrize(
    "value",
    [
        f"{hash_key('a')},{hash_key('b')}",
        f" {hash_key('a')} , {hash_key('b')} ",
        f'["{hash_key("a")}", "{hash_key("b")}"]',  # the Pulumi config's format, pasted as is
    ],
)
def test_env_hash_list_takes_a_comma_or_a_json_list(value: str) -> None:
    settings = Settings.from_env({"MODERATION_API_KEY_HASHES": value})
    assert settings.api_key_hashes == (hash_key("a"), hash_key("b"))


def test_env_hash_list_that_is_broken_json_names_the_variable() -> None:
    with pytest.raises(SettingsError, match=r"^MODERATION_API_KEY_HASHES: not a valid JSON list"):
        Settings.from_env({"MODERATION_API_KEY_HASHES": f'["{hash_key("a")}",'})


@pytest.mark.parametrize("stdin", ["", "\n", "   \n"])
def test_hash_command_refuses_an_empty_key(stdin: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "service.auth"], input=stdin, capture_output=True, text=True
    )
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert "refusing to hash an empty key" in completed.stderr
