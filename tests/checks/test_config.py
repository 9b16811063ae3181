"""The checks file: reading it, refusing it whole with `path:line:` faults, and loading
it into a release through the audited link_checks operation."""

from __future__ import annotations

import logging
from io import StringIO
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.utils import translation

from checks import config
from checks.credentials import url_character_problem, web_url
from checks.kinds.registry import REGISTRY
from checks.management.commands.load_checks import Command as LoadChecks
from checks.models import Check
from releases import workflow
from releases.actors import SystemActor
from releases.models import AuditAction, AuditEvent, Release, ReleaseItem, TemplateItem
from tests.conftest import build_small_template

SYSTEM = SystemActor("tests")
REPOSITORY = Path(__file__).resolve().parents[2]

GOOD = """\
[[check]]
name = "tls"
kind = "tls"
host = "app.example.com"
item = "TLS certificates installed"

[[check]]
name = "smoke"
kind = "http"
url = "https://app.example.com/health"
conditions = ["[STATUS] == 200", "[BODY].status == ok"]
item = [
  "Smoke tests in production",
  "Deploy the backend",
]
"""

# GOOD without its "smoke" check.
ONLY_TLS = GOOD.split("\n\n")[0] + "\n"


def write(tmp_path: Path, text: str, name: str = "checks.toml") -> Path:
    path = tmp_path / name
    path.write_text(dedent(text), encoding="utf-8")
    return path


def checks_of(release: Release) -> dict[str, list[str]]:
    return {i.text: i.checks for i in release.items.order_by("position")}


def fingerprint(release: Release) -> dict[str, Any]:
    """Everything a load could write, to prove a refused one wrote nothing."""
    release.refresh_from_db()
    return {
        "revision": release.revision,
        "checks": list(
            Check.objects.filter(release=release)
            .order_by("name")
            .values_list(
                "name", "kind", "options", "linked_item_ids", "source", "retired_at", "updated_at"
            )
        ),
        "items": list(
            release.items.order_by("position").values_list("checks", "check_results", "revision")
        ),
        "events": AuditEvent.objects.count(),
    }


def refused(path: Path, release: Release) -> list[str]:
    """The faults of a file that must change nothing at all."""
    before = fingerprint(release)
    with pytest.raises(config.ChecksFileError) as caught:
        config.load(path, release, by=SYSTEM)
    assert fingerprint(release) == before
    assert str(caught.value) == "\n".join(caught.value.errors)
    return caught.value.errors


@pytest.fixture
def loaded(release: Release, tmp_path: Path) -> Release:
    """The small release with GOOD loaded, so a refused file has something to spoil."""
    config.load(write(tmp_path, GOOD), release, by=SYSTEM)
    return release


# --- reading ------------------------------------------------------------------------------


def test_it_reads_each_check_with_its_options_items_and_header_line(tmp_path: Path) -> None:
    specs = config.read(write(tmp_path, GOOD))

    assert specs == [
        config.CheckSpec(
            name="tls",
            kind="tls",
            options={"host": "app.example.com"},
            items=("TLS certificates installed",),
            line=1,
        ),
        config.CheckSpec(
            name="smoke",
            kind="http",
            options={
                "url": "https://app.example.com/health",
                "conditions": ["[STATUS] == 200", "[BODY].status == ok"],
            },
            items=("Smoke tests in production", "Deploy the backend"),
            line=7,
        ),
    ]
    assert specs[1].item_lines == (13, 14)


def test_it_reads_an_empty_file_as_no_checks(tmp_path: Path) -> None:
    assert config.read(write(tmp_path, "# nothing yet\n")) == []


# --- loading ------------------------------------------------------------------------------


def test_it_loads_a_good_file_and_links_its_checks_to_the_items_it_names(
    release: Release, tmp_path: Path
) -> None:
    revision = release.revision

    summary = config.load(write(tmp_path, GOOD), release, by=SYSTEM)

    assert summary == config.LoadSummary(
        created=["tls", "smoke"], updated=[], retired=[], linked_items=3, loaded=["tls", "smoke"]
    )
    assert str(summary) == "2 checks loaded (2 new, 0 updated, 0 retired), linked to 3 items"
    assert checks_of(release) == {
        "Merge everything": [],
        "Unit tests pass": [],
        "TLS certificates installed": ["tls"],
        "Screens reviewed": [],
        "Nice-to-have dashboard": [],
        "Deploy the backend": ["smoke"],
        "Smoke tests in production": ["smoke"],
    }
    tls = Check.objects.get(release=release, name="tls")
    assert (tls.kind, tls.options, tls.source, tls.retired_at) == (
        "tls",
        {"host": "app.example.com"},
        "checks.toml:1",
        None,
    )
    smoke = Check.objects.get(release=release, name="smoke")
    assert smoke.linked_item_ids == [
        release.items.get(text="Smoke tests in production").pk,
        release.items.get(text="Deploy the backend").pk,
    ]
    event = AuditEvent.objects.get(release=release, action=AuditAction.CHECKS_LINKED)
    assert (event.actor_label, event.target) == ("tests", "checks.toml")
    assert event.after["created"] == ["tls", "smoke"]
    assert event.after["items"]["TLS certificates installed"] == {"before": [], "after": ["tls"]}
    release.refresh_from_db()
    assert release.revision == revision + 1


def test_it_retires_and_unlinks_a_check_removed_from_the_file_but_keeps_its_row(
    loaded: Release, tmp_path: Path
) -> None:
    summary = config.load(write(tmp_path, ONLY_TLS), loaded, by=SYSTEM)

    assert (summary.created, summary.updated, summary.retired) == ([], [], ["smoke"])
    assert checks_of(loaded)["Deploy the backend"] == []
    assert checks_of(loaded)["Smoke tests in production"] == []
    assert checks_of(loaded)["TLS certificates installed"] == ["tls"]
    smoke = Check.objects.get(release=loaded, name="smoke")
    assert smoke.retired_at is not None
    assert list(Check.objects.active().filter(release=loaded).values_list("name", flat=True)) == [
        "tls"
    ]
    event = AuditEvent.objects.filter(action=AuditAction.CHECKS_LINKED).first()
    assert event is not None
    assert event.after["retired"] == ["smoke"]


def test_it_brings_a_retired_check_back_when_the_file_declares_it_again(
    loaded: Release, tmp_path: Path
) -> None:
    config.load(write(tmp_path, ONLY_TLS), loaded, by=SYSTEM)

    summary = config.load(write(tmp_path, GOOD), loaded, by=SYSTEM)

    assert summary.updated == ["smoke"]
    assert Check.objects.get(release=loaded, name="smoke").retired_at is None
    assert checks_of(loaded)["Deploy the backend"] == ["smoke"]


def test_it_changes_nothing_when_the_same_file_is_loaded_again(
    loaded: Release, tmp_path: Path
) -> None:
    before = fingerprint(loaded)

    summary = config.load(write(tmp_path, GOOD), loaded, by=SYSTEM)

    assert (summary.created, summary.updated, summary.retired) == ([], [], [])
    assert str(summary) == "2 checks loaded (0 new, 0 updated, 0 retired), linked to 3 items"
    assert fingerprint(loaded) == before


def test_it_updates_a_check_whose_options_changed(loaded: Release, tmp_path: Path) -> None:
    config.load(
        write(tmp_path, GOOD.replace("app.example.com", "www.example.com")), loaded, by=SYSTEM
    )

    tls = Check.objects.get(release=loaded, name="tls")
    assert tls.options == {"host": "www.example.com"}
    smoke = Check.objects.get(release=loaded, name="smoke")
    assert smoke.options["url"] == "https://www.example.com/health"


def test_it_keeps_an_items_own_marker_when_the_file_stops_linking_it(
    release: Release, tmp_path: Path
) -> None:
    # The checklist's `<!-- deploycheck: check=tls -->` marker on this item, as imported.
    marked = release.items.get(text="Merge everything")
    ReleaseItem.objects.filter(pk=marked.pk).update(checks=["tls"])
    both = GOOD.replace(
        'item = "TLS certificates installed"',
        'item = ["TLS certificates installed", "Merge everything"]',
    )
    config.load(write(tmp_path, both), release, by=SYSTEM)
    assert Check.objects.get(release=release, name="tls").linked_item_ids == [
        release.items.get(text="TLS certificates installed").pk
    ]

    config.load(write(tmp_path, GOOD), release, by=SYSTEM)

    assert checks_of(release)["Merge everything"] == ["tls"]
    assert checks_of(release)["TLS certificates installed"] == ["tls"]


def test_it_puts_an_items_markers_before_the_checks_the_file_links(
    release: Release, tmp_path: Path
) -> None:
    marked = release.items.get(text="Deploy the backend")
    ReleaseItem.objects.filter(pk=marked.pk).update(checks=["tls"])

    config.load(write(tmp_path, GOOD), release, by=SYSTEM)

    assert checks_of(release)["Deploy the backend"] == ["tls", "smoke"]


def test_it_matches_an_item_written_with_other_case_and_spacing(
    release: Release, tmp_path: Path
) -> None:
    text = GOOD.replace('"TLS certificates installed"', '"  tls   CERTIFICATES installed "')

    config.load(write(tmp_path, text), release, by=SYSTEM)

    assert checks_of(release)["TLS certificates installed"] == ["tls"]


# --- refusals -----------------------------------------------------------------------------

TLS_HEAD = '[[check]]\nname = "tls"\nkind = "tls"\n'

FAULTS = [
    pytest.param(
        '[[check]]\nname = "tls"\nkind = tls\n',
        "3: not valid TOML: invalid value at column 8",
        id="toml-syntax",
    ),
    pytest.param(
        'title = "Checks"\n' + TLS_HEAD + 'host = "a.example.com"\n',
        "1: unknown top-level key “title”; a checks file holds only [[check]] tables",
        id="top-level-key",
    ),
    pytest.param(
        TLS_HEAD + 'host = "a.example.com"\n\n[[checks]]\nname = "x"\n',
        "6: unknown top-level key “checks”; a checks file holds only [[check]] tables",
        id="top-level-table",
    ),
    pytest.param(
        '[check]\nname = "tls"\n',
        "1: check must be [[check]] tables",
        id="single-table",
    ),
    pytest.param(
        '[[check]]\nkind = "tls"\nhost = "a.example.com"\n',
        "1: this [[check]] has no name",
        id="no-name",
    ),
    pytest.param(
        '[[check]]\nname = "tls"\nhost = "a.example.com"\n',
        "1: check “tls” has no kind; known kinds: cors, dns, elevenlabs, github, google_ai, "
        "http, openai, statuspage, supabase, tls, twilio, webhook",
        id="no-kind",
    ),
    pytest.param(
        '[[check]]\nname = "TLS check"\nkind = "tls"\nhost = "a.example.com"\n',
        "2: check name “TLS check” must be lower-case letters, digits, dots, dashes and "
        "underscores, starting with a letter or digit (at most 64)",
        id="bad-name",
    ),
    pytest.param(
        TLS_HEAD + 'host = "a.example.com"\n\n' + TLS_HEAD + 'host = "b.example.com"\n',
        "7: check name “tls” is used twice (first at line 1)",
        id="name-twice",
    ),
    pytest.param(
        '[[check]]\nname = "tls"\nkind = "ping"\n',
        "3: check “tls”: “ping” is not a kind of check; known: cors, dns, elevenlabs, "
        "github, google_ai, http, openai, statuspage, supabase, tls, twilio, webhook",
        id="unknown-kind",
    ),
    pytest.param(
        TLS_HEAD + 'host = "a.example.com"\nhostname = "a.example.com"\n',
        "5: check “tls”: unknown key “hostname” for kind tls; "
        "allowed: name, kind, item, host, ca_file, min_days, port",
        id="unknown-key",
    ),
    pytest.param(TLS_HEAD, "1: check “tls”: kind tls needs host", id="missing-required"),
    pytest.param(
        TLS_HEAD + 'host = "a.example.com"\nport = "443"\n',
        "5: check “tls”: port must be a whole number",
        id="int-as-text",
    ),
    pytest.param(
        TLS_HEAD + 'host = "a.example.com"\nport = true\n',
        "5: check “tls”: port must be a whole number",
        id="int-as-bool",
    ),
    pytest.param(
        TLS_HEAD + "host = 7\n",
        "4: check “tls”: host must be a string",
        id="text-as-number",
    ),
    pytest.param(
        '[[check]]\nname = "h"\nkind = "http"\nurl = "https://a.example.com"\nconditions = [1]\n',
        "5: check “h”: conditions must be a string or a list of strings",
        id="text-list",
    ),
    pytest.param(
        '[[check]]\nname = "h"\nkind = "http"\nurl = "ftp://a.example.com"\n',
        "4: check “h”: url must be an http:// or https:// URL with a host",
        id="url-scheme",
    ),
    pytest.param(
        '[[check]]\nname = "h"\nkind = "http"\nurl = "https://a.example.com/x\\r\\nHost: evil"\n',
        "4: check “h”: url must not contain spaces or control characters (it holds U+000D)",
        id="url-line-break",
    ),
    pytest.param(
        '[[check]]\nname = "h"\nkind = "http"\nurl = "https://a.exa mple.com/"\n',
        "4: check “h”: url must not contain spaces or control characters (it holds U+0020)",
        id="url-space",
    ),
    pytest.param(
        '[[check]]\nname = "h"\nkind = "http"\nurl = "https://"\n',
        "4: check “h”: url must be an http:// or https:// URL with a host",
        id="url-host",
    ),
    pytest.param(
        # A password too is a credential pasted in the file (test_config_secrets.py).
        '[[check]]\nname = "h"\nkind = "http"\nurl = "https://ops@a.example.com"\n',
        "4: check “h”: url must not hold credentials (user:password@); name a variable instead",
        id="url-credentials",
    ),
    pytest.param(
        TLS_HEAD + 'host = "https://a.example.com/"\n',
        "4: check “tls”: host must be a name or an address, not a URL",
        id="kind-check-options",
    ),
    pytest.param(
        '[[check]]\nname = "h"\nkind = "http"\nurl = "https://a.example.com"\n'
        'conditions = "[STATUS] = 200"\n',
        "1: check “h”: condition '[STATUS] = 200': it has no comparison operator",
        id="kind-condition",
    ),
    pytest.param(
        '[[check]]\nname = "h"\nkind = "http"\nurl = "https://a.example.com/\\r\\nhealth"\n',
        "4: check “h”: url must not contain spaces or control characters (it holds U+000D)",
        id="url-line-break",
    ),
    pytest.param(
        '[[check]]\nname = "h"\nkind = "http"\nurl = "https://1.2.3.999/"\n',
        "4: check “h”: url is not a valid URL: check its host, its port and its length",
        id="url-httpx-refuses",
    ),
    pytest.param(
        '[[check]]\nname = "h"\nkind = "http"\nurl = "https://a.example.com/\u202eexe.gpj"\n',
        "4: check “h”: url contains invisible bidirectional control characters (U+202E), which "
        "can make it read differently from what it is; remove them",
        id="url-bidi",
    ),
    pytest.param(
        '[[check]]\nname = "h"\nkind = "http"\nurl = "https://a.example.com"\n'
        'conditions = ["[STATUS] == 200", "[BODY] == \u2066ok\u2069"]\n',
        "5: check “h”: conditions contains invisible bidirectional control characters "
        "(U+2066, U+2069)",
        id="text-list-bidi",
    ),
    pytest.param(
        TLS_HEAD + 'host = "a.example.com"\nca_file = "/nonexistent/ca.pem"\n',
        "5: check “tls”: ca_file /nonexistent/ca.pem does not exist",
        id="ca-file-missing",
    ),
    pytest.param(
        TLS_HEAD + 'host = "a.example.com"\nca_file = "/"\n',
        "5: check “tls”: ca_file / is not a regular file",
        id="ca-file-directory",
    ),
    pytest.param(
        TLS_HEAD + 'host = "a.example.com"\nitem = 3\n',
        "5: check “tls”: item must be an item's text or a list of them",
        id="item-type",
    ),
    pytest.param(
        TLS_HEAD + 'host = "a.example.com"\nitem = " "\n',
        "5: check “tls”: item must not be empty",
        id="item-empty",
    ),
]


@pytest.mark.parametrize(("text", "fault"), FAULTS)
def test_it_refuses_a_faulty_file_with_its_line_and_writes_nothing(
    loaded: Release, tmp_path: Path, text: str, fault: str
) -> None:
    path = write(tmp_path, text, name="bad.toml")

    errors = refused(path, loaded)

    assert any(error.startswith(f"{path}:{fault}") for error in errors), errors


def test_in_spanish_it_quotes_the_toml_readers_own_words_as_such(
    loaded: Release, tmp_path: Path
) -> None:
    """Python's TOML reader speaks English only: its words are a quotation in a Spanish
    sentence, never half of one."""
    path = write(tmp_path, '[[check]]\nname = "tls"\nkind = tls\n', name="bad.toml")

    with translation.override("es"):
        errors = refused(path, loaded)

    assert errors == [
        f"{path}:3: TOML no válido en la columna 8 (el lector de TOML dice: «invalid value»)"
    ]


def test_it_reports_every_fault_of_a_file_in_line_order(loaded: Release, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        [[check]]
        name = "tls"
        kind = "tls"
        port = "443"

        [[check]]
        name = "Bad Name"
        kind = "nope"
        item = "No such item at all"

        [[check]]
        name = "smoke"
        kind = "http"
        url = "https://a.example.com"
        item = "Smoke tests in productoin"
        """,
    )

    errors = refused(path, loaded)

    assert [error.split(": ", 1)[0] for error in errors] == [
        f"{path}:1",
        f"{path}:4",
        f"{path}:7",
        f"{path}:8",
        f"{path}:9",
        f"{path}:15",
    ]
    assert errors[0].endswith("kind tls needs host")
    assert errors[5] == (
        f"{path}:15: item “Smoke tests in productoin” matches no item of v1.2.3; "
        "did you mean “Smoke tests in production”?"
    )


def test_it_words_each_fault_in_the_active_language(loaded: Release, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        [[check]]
        name = "tls"
        kind = "tls"
        port = "443"

        [[check]]
        name = "smoke"
        kind = "nope"
        item = "Smoke tests in productoin"

        [[check]]
        name = "ai"
        kind = "openai"
        secret_env = "sk-proj-Q2xhdWRlIHNheXMgbm8gc2VjcmV0cyBoZXJl"
        """,
    )

    with translation.override("es"):
        errors = refused(path, loaded)

    assert errors == [
        f"{path}:1: comprobación “tls”: el tipo tls necesita host",
        f"{path}:4: comprobación “tls”: port debe ser un número entero",
        f"{path}:8: comprobación “smoke”: “nope” no es un tipo de comprobación; conocidos: "
        + ", ".join(sorted(REGISTRY)),
        f"{path}:9: el ítem “Smoke tests in productoin” no coincide con ningún ítem de v1.2.3; "
        "¿querías decir “Smoke tests in production”?",
        f"{path}:14: comprobación “ai”: secret_env debe nombrar una variable de entorno como "
        "OPENAI_API_KEY, no contener la propia credencial",
    ]


def test_it_refuses_a_file_it_cannot_read(loaded: Release, tmp_path: Path) -> None:
    path = tmp_path / "missing.toml"

    assert refused(path, loaded) == [f"{path}: cannot be read (No such file or directory)"]


def test_it_refuses_a_file_that_is_not_utf8(loaded: Release, tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'# checks\n[[check]]\nname = "caf\xe9"\n')

    assert refused(path, loaded) == [f"{path}:3: is not UTF-8 text"]


PASTED = "sk-proj-Q2xhdWRlIHNheXMgbm8gc2VjcmV0cyBoZXJl"


def test_it_refuses_a_pasted_key_in_secret_env_and_never_repeats_it(
    loaded: Release, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = write(
        tmp_path,
        f"""\
        [[check]]
        name = "openai"
        kind = "openai"
        secret_env = "{PASTED}"
        item = "Deploy the backend"
        """,
    )

    with pytest.raises(config.ChecksFileError) as caught:
        config.load(path, loaded, by=SYSTEM)

    assert caught.value.errors == [
        f"{path}:4: check “openai”: secret_env must name an environment variable such as "
        "OPENAI_API_KEY, not hold the credential itself"
    ]
    shown = [str(caught.value), repr(caught.value), *map(str, caught.value.args), caplog.text]
    assert not any(PASTED in text for text in shown)
    assert not any(PASTED[:12] in text for text in shown)
    with pytest.raises(CommandError) as command:
        call_command("load_checks", str(path), release=loaded.version, stdout=StringIO())
    assert PASTED not in str(command.value)
    assert not Check.objects.filter(name="openai").exists()


def test_it_refuses_a_marker_naming_a_check_the_file_does_not_declare(
    loaded: Release, tmp_path: Path
) -> None:
    marked = loaded.items.get(text="Screens reviewed")
    ReleaseItem.objects.filter(pk=marked.pk).update(checks=["visual-diff"])
    path = write(tmp_path, GOOD)

    errors = refused(path, loaded)

    assert errors == [
        f"{path}: item “Screens reviewed” has a check=visual-diff marker, "
        "but the file declares no check visual-diff"
    ]


def test_it_suggests_close_items_when_an_item_matches_none(loaded: Release, tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("TLS certificates installed", "TLS certificate install"))

    errors = refused(path, loaded)

    assert errors == [
        f"{path}:5: item “TLS certificate install” matches no item of v1.2.3; "
        "did you mean “TLS certificates installed”?"
    ]


def test_it_says_only_that_nothing_matches_when_no_item_is_close(
    loaded: Release, tmp_path: Path
) -> None:
    path = write(tmp_path, GOOD.replace("TLS certificates installed", "Zzz"))

    assert refused(path, loaded) == [f"{path}:5: item “Zzz” matches no item of v1.2.3"]


def test_it_names_the_candidates_when_an_item_matches_several(db: Any, tmp_path: Path) -> None:
    template = build_small_template("twice")
    TemplateItem.objects.filter(template=template, text="Unit tests pass").update(
        text="Deploy the backend"
    )
    twice = workflow.create_release(template, version="v2.0.0", title="Twice", by=SYSTEM)
    path = write(tmp_path, GOOD)

    errors = refused(path, twice)

    assert errors == [
        f"{path}:14: item “Deploy the backend” matches 2 items of v2.0.0: "
        "“Deploy the backend” in Pre › Tests and “Deploy the backend” in Deploy › Run"
    ]


def test_it_names_the_candidates_in_the_active_language(db: Any, tmp_path: Path) -> None:
    template = build_small_template("twice")
    TemplateItem.objects.filter(template=template, text="Unit tests pass").update(
        text="Deploy the backend", phase="", section=""
    )
    twice = workflow.create_release(template, version="v2.0.0", title="Twice", by=SYSTEM)
    path = write(tmp_path, GOOD)

    with translation.override("es"):
        errors = refused(path, twice)

    assert errors == [
        f"{path}:14: el ítem “Deploy the backend” coincide con 2 ítems de v2.0.0: "
        "“Deploy the backend” en posición 2 y “Deploy the backend” en Deploy › Run"
    ]


def test_it_refuses_a_load_by_someone_who_is_not_staff_and_writes_nothing(
    release: Release, tmp_path: Path, users: dict[str, Any]
) -> None:
    before = fingerprint(release)

    with pytest.raises(PermissionDenied):
        config.load(write(tmp_path, GOOD), release, by=users["devops"])

    assert fingerprint(release) == before


# --- the command --------------------------------------------------------------------------


def test_it_prints_the_summary_from_the_load_checks_command(
    release: Release, tmp_path: Path
) -> None:
    out = StringIO()

    call_command("load_checks", str(write(tmp_path, GOOD)), release="v1.2.3", stdout=out)

    assert out.getvalue() == "2 checks loaded (2 new, 0 updated, 0 retired), linked to 3 items\n"
    event = AuditEvent.objects.get(action=AuditAction.CHECKS_LINKED)
    assert event.actor_label == "manage.py load_checks"


def test_it_exits_non_zero_with_every_fault_line_from_the_command(
    loaded: Release,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write(tmp_path, TLS_HEAD + 'port = "443"\n', name="bad.toml")
    before = fingerprint(loaded)
    # The command line closes every connection when it ends; the test's transaction
    # needs this one.
    monkeypatch.setattr(connections, "close_all", lambda: None)

    with pytest.raises(SystemExit) as exit_:
        LoadChecks().run_from_argv(["manage.py", "load_checks", str(path), "--release", "v1.2.3"])

    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert f"{path}:1: check “tls”: kind tls needs host" in err
    assert f"{path}:4: check “tls”: port must be a whole number" in err
    assert fingerprint(loaded) == before


def test_it_refuses_an_unknown_release_from_the_command(tmp_path: Path, db: Any) -> None:
    with pytest.raises(CommandError) as caught:
        call_command("load_checks", str(write(tmp_path, GOOD)), release="v9.9.9")

    assert str(caught.value) == "no release v9.9.9"


# --- the example file ---------------------------------------------------------------------


def test_it_loads_the_example_file_cleanly_against_the_seed_release(db: Any) -> None:
    template = workflow.import_default_template(by=SYSTEM)
    seed = workflow.create_release(template, version="v1.0.0", title="x", by=SYSTEM)

    example = REPOSITORY / "checks.example.toml"

    summary = config.load(example, seed, by=SYSTEM)

    declared = Check.objects.filter(release=seed)
    assert sorted(summary.created) == sorted(declared.values_list("name", flat=True))
    linked = {name for entry in seed.items.all() for name in entry.checks}
    assert linked == set(summary.created)
    assert all(check.linked_item_ids for check in declared)
    by_text = checks_of(seed)
    assert by_text["La integración con OpenAI/Google AI está verificada en producción"] == [
        "openai",
        "google-ai",
    ]
    assert by_text["El CHANGELOG.md está actualizado"] == ["github-changelog"]
    assert by_text["Verificar que la aplicación responde correctamente"] == ["api-health"]
    # Written exactly as the seed has them, not merely close enough to match.
    seed_texts = set(seed.items.values_list("text", flat=True))
    assert {text for spec in config.read(example) for text in spec.items} <= seed_texts


@pytest.mark.parametrize(
    "character", [*map(chr, range(0x20)), " ", "\x7f", "\x85", "\x9f", "\xa0", "\u2028", "\u3000"]
)
def test_a_url_holding_a_space_or_a_control_character_is_no_url(character: str) -> None:
    url = f"https://a.example.com/x{character}y"

    assert web_url(url) is None
    assert url_character_problem("url", url) == (
        f"url must not contain spaces or control characters (it holds U+{ord(character):04X})"
    )
    assert web_url("https://a.example.com/x%20y") is not None
