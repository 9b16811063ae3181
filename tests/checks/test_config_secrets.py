"""What a checks file may not hold or be: credentials pasted anywhere in it, *_env options
naming deploycheck's own settings, a vendor's base_url in the clear, more checks than a
release may have, and files that are too big, too deep, not regular files or not UTF-8.
Each is refused whole at load, with its place, without repeating a credential."""

from __future__ import annotations

import codecs
import os
import re
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from checks import config
from checks.models import Check
from releases.models import Release, ReleaseItem
from tests.checks.test_config import GOOD, REPOSITORY, SYSTEM, refused, write
from tests.conftest import deadline, swapped_for_a_fifo


@pytest.fixture
def loaded(release: Release, tmp_path: Path) -> Release:
    """The small release with GOOD loaded, so a refused file has something to spoil."""
    config.load(write(tmp_path, GOOD, name="good.toml"), release, by=SYSTEM)
    return release


# --- credentials pasted into the file ------------------------------------------------------

# Made-up values in each vendor's documented format.
OPENAI_PROJECT = "sk-proj-Q2xhdWRlIHNheXMgbm8gc2VjcmV0cyBoZXJl"
OPENAI_LEGACY = "sk-" + "T3BlbkFJ" + "a1B2c3D4e5F6" * 3 + "x9Y8"
OPENAI_SERVICE = "sk-svcacct-" + "Zm9vYmFy" + "Q1w2E3r4T5y6" * 2
GITHUB_CLASSIC = "ghp_" + "A1b2C3d4E5" * 3 + "f6G7h8"
GITHUB_FINE = "github_pat_11ABCDEFG0" + "a1b2c3d4e5" * 3 + "_" + "Z9y8x7w6v5" * 5
TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "f0e1d2c3b4a5968778695a4b3c2d1e0f"
# {"alg":"HS256","typ":"JWT"} . {"role":"service_role"} . a signature
JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJlLW5vdA"
ELEVENLABS = "sk_" + "0123456789abcdef" * 3
GOOGLE = "AIza" + "Sy" + "A1b2" * 8 + "x"
SUPABASE_SECRET = "sb_secret_" + "N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz"
SUPABASE_PUBLISHABLE = "sb_publishable_" + "A1b2C3d4E5f6G7h8I9j0K1_ab12cd34"
SLACK = "xoxb-" + "123456789012-1234567890123-" + "AbCdEfGhIjKlMnOpQrStUvWx"
# AWS's own documentation example.
AWS = "AKIAIOSFODNN7EXAMPLE"

TWILIO_HEAD = (
    '[[check]]\nname = "twilio"\nkind = "twilio"\n'
    'secret_env = "TWILIO_AUTH_TOKEN"\naccount_sid_env = "TWILIO_ACCOUNT_SID"\n'
)
HTTP_HEAD = '[[check]]\nname = "h"\nkind = "http"\n'

PASTED = [
    pytest.param(
        '[[check]]\nname = "openai"\nkind = "openai"\nsecret_env = "OPENAI_API_KEY"\n'
        f'models = [\n  "gpt-4o-mini",\n  "{OPENAI_PROJECT}",\n]\n',
        OPENAI_PROJECT,
        "7: check “openai”: option models carries a credential (an OpenAI key, sk-proj-…); "
        "name an environment variable instead",
        id="openai-project-in-models",
    ),
    pytest.param(
        HTTP_HEAD + 'url = "https://a.example.com"\n'
        f'item = ["Deploy the backend", "Smoke {OPENAI_LEGACY}"]\n',
        OPENAI_LEGACY,
        "5: check “h”: item carries a credential (an OpenAI key, sk-…); remove it",
        id="openai-legacy-in-item",
    ),
    pytest.param(
        HTTP_HEAD + 'url = "https://a.example.com"\n'
        f'conditions = ["[STATUS] == 200", "[BODY].key == {OPENAI_SERVICE}"]\n',
        OPENAI_SERVICE,
        "5: check “h”: option conditions carries a credential (an OpenAI key, sk-svcacct-…); "
        "name an environment variable instead",
        id="openai-service-account-in-conditions",
    ),
    pytest.param(
        f'[[check]]\nname = "github"\nkind = "github"\nrepo = "{GITHUB_CLASSIC}"\n',
        GITHUB_CLASSIC,
        "4: check “github”: option repo carries a credential (a GitHub token, ghp_…); "
        "name an environment variable instead",
        id="github-classic-in-repo",
    ),
    pytest.param(
        HTTP_HEAD + f'url = "https://a.example.com/{GITHUB_FINE}/health"\n',
        GITHUB_FINE,
        "4: check “h”: option url carries a credential (a GitHub token, github_pat_…); "
        "name an environment variable instead",
        id="github-fine-grained-in-url",
    ),
    pytest.param(
        TWILIO_HEAD + f'expected_host = "{TWILIO_SID}:{TWILIO_TOKEN}"\n',
        TWILIO_TOKEN,
        "6: check “twilio”: option expected_host carries a credential "
        "(a Twilio SID with its secret, AC…); name an environment variable instead",
        id="twilio-sid-and-token",
    ),
    pytest.param(
        '[[check]]\nname = "supabase"\nkind = "supabase"\nsecret_env = "SUPABASE_KEY"\n'
        f'base_url = "https://abcdefghijklmnop.supabase.co"\ntables = ["calls", "{JWT}"]\n',
        JWT,
        "6: check “supabase”: option tables carries a credential (a JSON Web Token, eyJ…); "
        "name an environment variable instead",
        id="jwt-in-tables",
    ),
    pytest.param(
        '[[check]]\nname = "voice"\nkind = "elevenlabs"\nsecret_env = "ELEVENLABS_API_KEY"\n'
        f'voice_id = "{ELEVENLABS}"\n',
        ELEVENLABS,
        "5: check “voice”: option voice_id carries a credential (an ElevenLabs key, sk_…); "
        "name an environment variable instead",
        id="elevenlabs-in-voice-id",
    ),
    pytest.param(
        HTTP_HEAD + f'url = "https://a.example.com/v1/models?key={GOOGLE}"\n',
        GOOGLE,
        "4: check “h”: option url carries a credential (a Google API key, AIza…); "
        "name an environment variable instead",
        id="google-in-url",
    ),
    pytest.param(
        '[[check]]\nname = "supabase"\nkind = "supabase"\nsecret_env = "SUPABASE_KEY"\n'
        f'base_url = "https://abcdefghijklmnop.supabase.co"\nservice_key = "{SUPABASE_SECRET}"\n',
        SUPABASE_SECRET,
        "6: check “supabase”: option service_key carries a credential "
        "(a Supabase key, sb_secret_…); name an environment variable instead",
        id="supabase-secret-in-unknown-key",
    ),
    pytest.param(
        f'[[check]]\nname = "{SUPABASE_PUBLISHABLE}"\nkind = "tls"\nhost = "a.example.com"\n',
        SUPABASE_PUBLISHABLE,
        "2: this [[check]]: name carries a credential (a Supabase key, sb_publishable_…); "
        "remove it",
        id="supabase-publishable-in-name",
    ),
    pytest.param(
        f'[[check]]\nname = "tls"\nkind = "{SLACK}"\nhost = "a.example.com"\n',
        SLACK,
        "3: check “tls”: kind carries a credential (a Slack token, xoxb-…); remove it",
        id="slack-in-kind",
    ),
    pytest.param(
        f'[[check]]\nname = "tls"\nkind = "tls"\nhost = "{AWS}.example.com"\n',
        AWS,
        "4: check “tls”: option host carries a credential (an AWS access key, AKIA…); "
        "name an environment variable instead",
        id="aws-in-host",
    ),
    pytest.param(
        # Upper case and digits: it reads as a variable's name, and is not one.
        f'[[check]]\nname = "openai"\nkind = "openai"\nsecret_env = "{AWS}"\n',
        AWS,
        "4: check “openai”: secret_env must name an environment variable such as "
        "OPENAI_API_KEY, not hold the credential itself",
        id="aws-in-secret-env",
    ),
    pytest.param(
        HTTP_HEAD + 'url = "https://ops:hunter2-not-a-name@a.example.com/health"\n',
        "hunter2-not-a-name",
        "4: check “h”: option url carries a credential (user:password@); "
        "name an environment variable instead",
        id="url-userinfo",
    ),
    pytest.param(
        HTTP_HEAD + 'url = "https://a.example.com"\n'
        'item = "See https://deploy:s3cr3t-pass@ci.example.com/job"\n',
        "s3cr3t-pass",
        "5: check “h”: item carries a credential (user:password@); remove it",
        id="userinfo-in-item",
    ),
    pytest.param(
        f'[[check]]\nname = "tls"\nkind = "tls"\nhost = "a.example.com"\n"{GITHUB_CLASSIC}" = 1\n',
        GITHUB_CLASSIC,
        "5: check “tls”: a key carries a credential (a GitHub token, ghp_…); remove it",
        id="credential-as-a-key",
    ),
    pytest.param(
        f'token = "{SLACK}"\n\n[[check]]\nname = "tls"\nkind = "tls"\nhost = "a.example.com"\n',
        SLACK,
        "1: top-level key “token” carries a credential (a Slack token, xoxb-…); remove it",
        id="top-level-value",
    ),
]


@pytest.mark.parametrize(("text", "secret", "fault"), PASTED)
def test_it_refuses_a_credential_pasted_anywhere_and_never_repeats_it(
    loaded: Release, tmp_path: Path, text: str, secret: str, fault: str
) -> None:
    path = write(tmp_path, text, name="bad.toml")

    errors = refused(path, loaded)

    assert errors == [f"{path}:{fault}"]
    assert secret not in repr(errors)


QUERIES = [
    ("token", "?token=…"),
    ("access_token", "?access_token=…"),
    ("api_key", "?api_key=…"),
    ("apiKey", "?apiKey=…"),
    ("key", "?key=…"),
    ("sig", "?sig=…"),
    ("signature", "?signature=…"),
    ("X-Amz-Signature", "?X-Amz-Signature=…"),
    ("password", "?password=…"),
    ("client_secret", "?client_secret=…"),
]


@pytest.mark.parametrize(("parameter", "shown"), QUERIES)
def test_it_refuses_a_url_whose_query_carries_a_credential(
    loaded: Release, tmp_path: Path, parameter: str, shown: str
) -> None:
    value = "d41d8cd98f00b204e9800998ecf8427e"
    path = write(
        tmp_path,
        HTTP_HEAD + f'url = "https://a.example.com/health?region=eu&{parameter}={value}"\n',
        name="bad.toml",
    )

    errors = refused(path, loaded)

    assert errors == [
        f"{path}:4: check “h”: option url carries a credential ({shown}); "
        "name an environment variable instead"
    ]
    assert value not in repr(errors)


def test_it_refuses_a_token_in_a_url_fragment(loaded: Release, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HTTP_HEAD + 'url = "https://a.example.com/#access_token=opaque-session-value"\n',
        name="bad.toml",
    )

    assert refused(path, loaded) == [
        f"{path}:4: check “h”: option url carries a credential (#access_token=…); "
        "name an environment variable instead"
    ]


def test_it_keeps_a_pasted_credential_out_of_the_commands_output(
    loaded: Release, tmp_path: Path
) -> None:
    path = write(tmp_path, HTTP_HEAD + f'url = "https://a.example.com/?token={JWT}"\n')

    with pytest.raises(CommandError) as caught:
        call_command("load_checks", str(path), release=loaded.version, stdout=StringIO())

    assert str(caught.value) == (
        f"{path}:4: check “h”: option url carries a credential (a JSON Web Token, eyJ…); "
        "name an environment variable instead"
    )
    assert not Check.objects.filter(release=loaded, name="h").exists()


def test_it_does_not_mistake_look_alikes_for_credentials(tmp_path: Path) -> None:
    """A Twilio SID alone names an account (Twilio's own URLs hold it); a cursor, a
    search query, an empty token and a user name without a password carry no secret."""
    path = write(
        tmp_path,
        f"""\
        [[check]]
        name = "sk-learn-regression-monitoring"
        kind = "http"
        url = "https://api.example.com/2010-04-01/Accounts/{TWILIO_SID}.json?PageSize=1&pageToken=PA{TWILIO_SID}&query=up&token="
        conditions = ["[STATUS] == 200", "[BODY].sid == {TWILIO_SID}"]
        item = "Clone https://git@github.com/example-org/app works"

        [[check]]
        name = "github"
        kind = "github"
        repo = "example-org/call-automation"
        secret_env = "GITHUB_TOKEN"
        base_url = "https://github-proxy.example.com/api"
        """,
    )

    assert [spec.name for spec in config.read(path)] == ["sk-learn-regression-monitoring", "github"]


# --- *_env options and base_url ---------------------------------------------------------------

OWN = [
    "SECRET_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "EMAIL_URL",
    "DJANGO_SETTINGS_MODULE",
    "DEPLOYCHECK_ADMIN_TOKEN",
    "CELERY_BROKER_URL",
]


@pytest.mark.parametrize("variable", OWN)
def test_it_refuses_an_env_option_naming_one_of_deploycheck_s_own_settings(
    loaded: Release, tmp_path: Path, variable: str
) -> None:
    path = write(
        tmp_path,
        f'[[check]]\nname = "openai"\nkind = "openai"\nsecret_env = "{variable}"\n',
        name="bad.toml",
    )

    assert refused(path, loaded) == [
        f"{path}:4: check “openai”: secret_env must not name {variable}, which deploycheck "
        "reads for itself; name a variable that holds only this check's credential"
    ]


def test_it_refuses_an_account_sid_env_naming_the_database_url(
    loaded: Release, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        '[[check]]\nname = "twilio"\nkind = "twilio"\nsecret_env = "TWILIO_AUTH_TOKEN"\n'
        'account_sid_env = "DATABASE_URL"\n',
        name="bad.toml",
    )

    assert refused(path, loaded) == [
        f"{path}:5: check “twilio”: account_sid_env must not name DATABASE_URL, which "
        "deploycheck reads for itself; name a variable that holds only this check's credential"
    ]


def test_it_refuses_every_variable_deploycheck_reads_from_its_environment(
    tmp_path: Path,
) -> None:
    read_by_app = re.compile(r'(?:\benv\w*|environ\.get|\benv\.get)\(\s*"([A-Z][A-Z0-9_]*)"')
    names = sorted(
        {
            name
            for source in ("deploycheck/settings.py", "deploycheck/run.py")
            for name in read_by_app.findall((REPOSITORY / source).read_text())
        }
    )
    assert {"SECRET_KEY", "DATABASE_URL", "PORT", "CHECKS_MAX_PER_RELEASE"} <= set(names)
    path = write(
        tmp_path,
        "".join(
            f'[[check]]\nname = "c{n}"\nkind = "openai"\nsecret_env = "{name}"\n'
            for n, name in enumerate(names)
        ),
    )

    with pytest.raises(config.ChecksFileError) as caught:
        config.read(path)

    assert [error.split(": ", 1)[0] for error in caught.value.errors] == [
        f"{path}:{4 * n + 4}" for n in range(len(names))
    ]
    assert all("which deploycheck reads for itself" in e for e in caught.value.errors)


@pytest.mark.parametrize(
    "base_url",
    ["http://api.openai.example.com/v1", "http://10.0.0.5:8080", "http://127.0.0.1.nip.io"],
)
def test_it_refuses_a_vendor_base_url_in_the_clear_to_another_machine(
    loaded: Release, tmp_path: Path, base_url: str
) -> None:
    path = write(
        tmp_path,
        '[[check]]\nname = "openai"\nkind = "openai"\nsecret_env = "OPENAI_API_KEY"\n'
        f'base_url = "{base_url}"\n',
        name="bad.toml",
    )

    assert refused(path, loaded) == [
        f"{path}:5: check “openai”: base_url must be an https:// URL; http:// only to this "
        "machine (localhost, 127.0.0.0/8, ::1)"
    ]


def test_it_accepts_a_vendor_base_url_in_https_or_to_a_stand_in_on_this_machine(
    tmp_path: Path,
) -> None:
    urls = [
        "https://openai-proxy.example.com/v1",
        "http://127.0.0.1:8081",
        "http://127.8.9.10:8081",
        "http://[::1]:8081",
        "http://localhost:8081",
    ]
    path = write(
        tmp_path,
        "".join(
            f'[[check]]\nname = "s{n}"\nkind = "statuspage"\n'
            f'url = "https://status.example.com"\nbase_url = "{url}"\n'
            for n, url in enumerate(urls)
        ),
    )

    assert [spec.options["base_url"] for spec in config.read(path)] == urls


# --- how many checks ------------------------------------------------------------------------


def tls_checks(count: int) -> str:
    return "".join(
        f'[[check]]\nname = "tls-{n}"\nkind = "tls"\nhost = "h{n}.example.com"\n\n'
        for n in range(count)
    )


def test_it_refuses_a_file_declaring_more_checks_than_a_release_may_have(
    loaded: Release, tmp_path: Path, settings: Any
) -> None:
    settings.CHECKS_MAX_PER_RELEASE = 2
    # A marker naming a check the file never got to declare is not reported besides.
    marked = loaded.items.get(text="Screens reviewed")
    ReleaseItem.objects.filter(pk=marked.pk).update(checks=["visual-diff"])
    path = write(tmp_path, tls_checks(3), name="bad.toml")

    assert refused(path, loaded) == [
        f"{path}:11: the file declares 3 checks; a release may have at most 2 "
        "(CHECKS_MAX_PER_RELEASE)"
    ]


def test_it_allows_500_checks_by_default_and_no_more(tmp_path: Path) -> None:
    assert len(config.read(write(tmp_path, tls_checks(500)))) == 500

    with pytest.raises(config.ChecksFileError) as caught:
        config.read(write(tmp_path, tls_checks(501)))

    assert caught.value.errors == [
        f"{tmp_path / 'checks.toml'}:2501: the file declares 501 checks; a release may have "
        "at most 500 (CHECKS_MAX_PER_RELEASE)"
    ]


# --- the file itself --------------------------------------------------------------------------


def test_it_refuses_a_file_larger_than_256_kib(loaded: Release, tmp_path: Path) -> None:
    padding = "#" * 99 + "\n"
    at_most = GOOD + padding * ((config.MAX_BYTES - len(GOOD)) // len(padding))
    at_most += "#" * (config.MAX_BYTES - len(at_most) - 1) + "\n"
    assert len(at_most.encode()) == config.MAX_BYTES == 256 * 1024
    assert len(config.read(write(tmp_path, at_most, name="full.toml"))) == 2
    path = write(tmp_path, at_most + "\n", name="bad.toml")

    assert refused(path, loaded) == [
        f"{path}: is larger than 256 KiB, the most a checks file may be"
    ]


@pytest.mark.parametrize(
    ("nested", "line"),
    [
        pytest.param("a = " + "[" * 2000 + "]" * 2000, 3, id="arrays"),
        pytest.param("a = " + "{ b = " * 2000 + "1" + " }" * 2000, 3, id="inline-tables"),
        pytest.param("a = [\n" + "[\n" * 2000 + "]\n" * 2000 + "]", 11, id="over-lines"),
    ],
)
def test_it_refuses_deep_nesting_at_its_line_instead_of_recursing(
    loaded: Release, tmp_path: Path, nested: str, line: int
) -> None:
    path = write(tmp_path, "# checks\n\n" + nested + "\n", name="bad.toml")

    errors = refused(path, loaded)

    assert errors == [
        f"{path}:{line}: arrays or inline tables nested more than 8 deep; "
        "a checks file needs 3 at most"
    ]
    with pytest.raises(CommandError) as caught:
        call_command("load_checks", str(path), release=loaded.version)
    assert str(caught.value) == errors[0]


def test_it_counts_no_brackets_written_in_strings_or_comments(tmp_path: Path) -> None:
    deep = "[" * 20
    path = write(
        tmp_path,
        f"# {deep}\n"
        f'[[check]]\nname = "h"\nkind = "http"\nurl = "https://a.example.com"\n'
        f"conditions = [\"[BODY].a == {deep}\", '[BODY].b == {deep}']  # {deep}\n"
        f'item = """\n{deep} \\""" {deep}\n"""\n'
        f"expect_status = 200\n",
    )

    [spec] = config.read(path)

    assert spec.options["conditions"][0] == f"[BODY].a == {deep}"
    assert spec.items == (f'{deep} """ {deep}\n',)


def test_it_refuses_a_fifo_without_waiting_for_a_writer(loaded: Release, tmp_path: Path) -> None:
    path = tmp_path / "checks.toml"
    os.mkfifo(path)

    with deadline(5):
        errors = refused(path, loaded)

    assert errors == [f"{path}: is a named pipe (FIFO), not a checks file"]


@pytest.mark.parametrize(
    ("make", "what"),
    [
        pytest.param(lambda folder: folder, "a directory", id="directory"),
        pytest.param(lambda folder: Path(os.devnull), "a character device", id="device"),
    ],
)
def test_it_refuses_a_path_that_is_not_a_regular_file(
    loaded: Release, tmp_path: Path, make: Any, what: str
) -> None:
    path = make(tmp_path)

    with deadline(5):
        errors = refused(path, loaded)

    assert errors == [f"{path}: is {what}, not a checks file"]


def test_it_reads_utf8_that_starts_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(codecs.BOM_UTF8 + GOOD.encode())

    assert config.read(path) == config.read(write(tmp_path, GOOD))


def test_it_refuses_a_file_swapped_for_a_fifo_after_its_first_look(
    loaded: Release, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = swapped_for_a_fifo(tmp_path / "checks.toml", monkeypatch)

    with deadline(5):
        errors = refused(path, loaded)

    assert errors == [f"{path}: is a named pipe (FIFO), not a checks file"]
