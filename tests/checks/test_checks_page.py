"""A release's Checks page: everyone on the release reads it, staff add, edit, retire and
test checks there through a form per kind that checks.config judges as it judges a
checks file (the same messages), and download the checks as a file that loads back.

The workers are not involved: `tasks.enqueue` is replaced by a recorder, so a test sees
exactly what a "Test now" would have sent them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import trustme
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_noop

from checks import config, export, tasks
from checks.kinds.registry import REGISTRY
from checks.models import Check, CheckResult, CheckRun, ResultState
from releases import workflow
from releases.actors import SystemActor
from releases.evidence import said
from releases.models import (
    AuditAction,
    AuditEvent,
    CheckOutcome,
    CheckReason,
    Release,
    ReleaseItem,
)
from tests.conftest import build_small_template, item

SYSTEM = SystemActor("tests")
PASTED = "sk-proj-Q2xhdWRlIHNheXMgbm8gc2VjcmV0cyBoZXJl"
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
WHERE = re.compile(r"^.*?:\d+: ")


class Recorder:
    """Stands in for checks.tasks.enqueue: what would have gone to the workers."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, int, float]] = []

    def __call__(self, result_id: int, attempt: int, delay: float) -> None:
        self.sent.append((result_id, attempt, delay))


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    sent = Recorder()
    monkeypatch.setattr(tasks, "enqueue", sent)
    return sent


@pytest.fixture
def loaded(release: Release, tmp_path: Path) -> Release:
    path = tmp_path / "checks.toml"
    path.write_text(GOOD, encoding="utf-8")
    config.load(path, release, by=SYSTEM)
    return release


def page_url(release: Release) -> str:
    return reverse("checks:checks", args=[release.version])


def add_url(release: Release, kind: str) -> str:
    return reverse("checks:add", args=[release.version]) + f"?kind={kind}"


def check_url(name: str, check: Check) -> str:
    return reverse(f"checks:{name}", args=[check.release.version, check.pk])


def the_check(release: Release, name: str) -> Check:
    return Check.objects.get(release=release, name=name)


def loader_says(tmp_path: Path, table: str) -> list[str]:
    """What loading a file holding this one [[check]] says, without its `path:line:`."""
    path = tmp_path / "one.toml"
    path.write_text("[[check]]\n" + table, encoding="utf-8")
    with pytest.raises(config.ChecksFileError) as caught:
        config.read(path)
    return [WHERE.sub("", line) for line in caught.value.errors]


def errors(response: Any) -> dict[str | None, list[str]]:
    form = response.context["form"]
    return {
        (None if key == "__all__" else key): [str(message) for message in messages]
        for key, messages in form.errors.items()
    }


def fingerprint(release: Release) -> dict[str, Any]:
    """Everything the page could change, to prove a refusal changed nothing."""
    release.refresh_from_db()
    return {
        "revision": release.revision,
        "checks": list(
            Check.objects.filter(release=release)
            .order_by("name")
            .values_list("name", "kind", "options", "linked_item_ids", "retired_at", "updated_at")
        ),
        "items": list(release.items.order_by("position").values_list("checks")),
        "events": AuditEvent.objects.count(),
        "runs": CheckRun.objects.count(),
    }


def rows_of(release: Release) -> list[tuple[Any, ...]]:
    """The Check rows, with their items by text so two releases compare."""
    text_of = dict(release.items.values_list("pk", "text"))
    return [
        (check.name, check.kind, check.options, [text_of[i] for i in check.linked_item_ids])
        for check in Check.objects.active().filter(release=release).order_by("name")
    ]


# --- who sees what ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("persona", "status", "controls"),
    [
        ("admin", 200, True),
        ("devops", 200, False),
        ("qa", 200, False),
        ("support", 200, False),
        ("outsider", 404, False),
    ],
)
def test_it_shows_the_page_to_everyone_on_the_release_and_its_controls_to_staff_only(
    loaded: Release, as_user: Any, persona: str, status: int, controls: bool
) -> None:
    response = as_user(persona).get(page_url(loaded))

    assert response.status_code == status
    if status == 200:
        html = response.content.decode()
        assert "app.example.com/health" in html
        assert ("Add a check" in html) is controls
        assert ("Download as TOML" in html) is controls
        assert ("Test now" in html) is controls


def test_it_reads_the_page_in_as_many_queries_for_many_checks_as_for_two(
    loaded: Release, as_user: Any
) -> None:
    client = as_user("qa")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(page_url(loaded)).status_code == 200
        return len(captured)

    queries()  # the first request of a session reads more (its session, its person)
    few = queries()
    for number in range(20):
        config.save(
            loaded,
            config.CheckSpec(f"extra-{number}", "tls", {"host": "h.example.com"}, (), 1),
            by=SYSTEM,
            new=True,
        )
    run = CheckRun.objects.create(
        release=loaded, requested_by_label="t", requested_by_kind="system"
    )
    CheckResult.objects.bulk_create(
        [
            CheckResult(
                run=run,
                subject=check,
                state=ResultState.DONE,
                outcome=CheckOutcome.PASS,
                finished_at=timezone.now(),
            )
            for check in Check.objects.filter(release=loaded)
        ]
    )

    assert queries() == few


def test_it_sends_an_anonymous_visitor_to_log_in(loaded: Release) -> None:
    response = Client().get(page_url(loaded))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("persona", ["devops", "qa", "support", "outsider"])
def test_it_lets_nobody_but_staff_change_test_or_download_checks(
    loaded: Release, as_user: Any, recorder: Recorder, persona: str
) -> None:
    client = as_user(persona)
    tls = the_check(loaded, "tls")
    before = fingerprint(loaded)
    expected = 404 if persona == "outsider" else 403

    answers = [
        client.get(add_url(loaded, "tls")),
        client.post(add_url(loaded, "tls"), {"name": "tls2", "host": "h.example.com"}),
        client.post(check_url("edit", tls), {"host": "evil.example.com"}),
        client.post(check_url("retire", tls)),
        client.post(check_url("test", tls)),
        client.get(reverse("checks:download", args=[loaded.version])),
    ]

    assert [answer.status_code for answer in answers] == [expected] * len(answers)
    assert fingerprint(loaded) == before
    assert recorder.sent == []


def test_it_shows_a_lead_the_checks_on_their_items_and_who_changed_them(
    loaded: Release, as_user: Any
) -> None:
    tls_item = item(loaded, "TLS certificates installed")
    as_user("admin").post(
        check_url("edit", the_check(loaded, "tls")),
        {"host": "www.example.com", "item": [str(tls_item.pk)]},
    )

    html = as_user("devops").get(page_url(loaded)).content.decode()
    mine = html[html.index("Checks on your items") : html.index("Active checks")]

    assert "TLS certificates installed" in mine
    assert "Automated check changed: admin" in mine
    # QA's item is not DevOps's.
    assert "Smoke tests in production" not in mine


# --- adding --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "typed", "options"),
    [
        (
            "tls",
            {"host": "app.example.com", "port": "8443"},
            {"host": "app.example.com", "port": 8443},
        ),
        (
            "http",
            {
                "url": "https://app.example.com/health",
                "conditions": "[STATUS] == 200\r\n\r\n[BODY].ok == true\r\n",
            },
            {
                "url": "https://app.example.com/health",
                "conditions": ["[STATUS] == 200", "[BODY].ok == true"],
            },
        ),
        (
            "openai",
            {"secret_env": "OPENAI_API_KEY", "models": "gpt-4o-mini", "probe": "false"},
            {"secret_env": "OPENAI_API_KEY", "models": ["gpt-4o-mini"], "probe": False},
        ),
        (
            "cors",
            {"url": "https://api.example.com/health", "public": "true", "probe": ""},
            {"url": "https://api.example.com/health", "public": True},
        ),
    ],
)
def test_it_adds_a_check_of_each_kind_from_its_form_and_audits_it(
    release: Release,
    as_user: Any,
    kind: str,
    typed: dict[str, str],
    options: dict[str, Any],
) -> None:
    target = item(release, "Smoke tests in production")
    revision = release.revision

    response = as_user("admin").post(
        add_url(release, kind), {"name": "probe-1", **typed, "item": [str(target.pk)]}
    )

    check = the_check(release, "probe-1")
    assert response.status_code == 302
    assert response["Location"] == page_url(release) + f"#check-{check.pk}"
    assert (check.kind, check.options, check.linked_item_ids, check.source) == (
        kind,
        options,
        [target.pk],
        "",
    )
    assert item(release, "Smoke tests in production").checks == ["probe-1"]
    added = AuditEvent.objects.get(release=release, action=AuditAction.CHECK_ADDED)
    assert (added.actor_label, added.target, added.before) == ("admin", "probe-1", {})
    assert added.after["options"] == options
    assert added.after["items"] == ["Smoke tests in production"]
    linked = AuditEvent.objects.get(release=release, action=AuditAction.CHECKS_LINKED)
    assert linked.after["items"] == {
        "Smoke tests in production": {"before": [], "after": ["probe-1"]}
    }
    release.refresh_from_db()
    assert release.revision == revision + 1


def test_its_form_refuses_a_header_read_from_deploycheck_s_own_secret_key(
    release: Release, as_user: Any
) -> None:
    target = item(release, "Smoke tests in production")
    typed = {
        "name": "collector",
        "url": "https://collector.example.com/",
        "headers_env": '{X-K = "SECRET_KEY"}',
        "item": [str(target.pk)],
    }

    response = as_user("admin").post(add_url(release, "http"), typed)

    assert not Check.objects.filter(release=release, name="collector").exists()
    html = response.content.decode()
    assert "must not name SECRET_KEY, which deploycheck reads for itself" in html
    assert "https://collector.example.com/" in html


def test_it_builds_a_field_per_option_with_the_widget_of_its_type(
    release: Release, as_user: Any
) -> None:
    response = as_user("admin").get(add_url(release, "openai"))
    html = response.content.decode()

    form = response.context["form"]
    assert list(form.fields) == [
        "name",
        "secret_env",
        *sorted(["base_url", "ca_file", "models", "probe"]),
        "item",
    ]
    assert re.search(r'<input type="url" name="base_url"', html)
    assert re.search(r'<textarea name="models"', html)
    assert re.search(r'<select name="probe"', html)
    assert re.search(r'<input type="text" name="secret_env"[^>]*required', html)
    assert "The NAME of the environment variable" in html
    assert "TLS certificates installed" in html


def test_it_refuses_a_pasted_key_with_the_loaders_message_and_never_shows_it_again(
    release: Release, as_user: Any, tmp_path: Path
) -> None:
    before = fingerprint(release)

    response = as_user("admin").post(
        add_url(release, "openai"),
        {"name": "openai", "secret_env": PASTED, "models": "gpt-4o-mini"},
    )

    assert response.status_code == 422
    said = loader_says(
        tmp_path,
        f'name = "openai"\nkind = "openai"\nsecret_env = "{PASTED}"\nmodels = ["gpt-4o-mini"]\n',
    )
    assert said == [
        "check “openai”: secret_env must name an environment variable such as OPENAI_API_KEY, "
        "not hold the credential itself"
    ]
    assert errors(response) == {"secret_env": said}
    html = response.content.decode()
    assert PASTED[:12] not in html
    # The rest of what was typed stays.
    assert 'value="openai"' in html
    assert "gpt-4o-mini</textarea>" in html
    assert fingerprint(release) == before


def test_it_refuses_a_vendor_base_url_in_the_clear_with_the_loaders_message(
    release: Release, as_user: Any, tmp_path: Path
) -> None:
    typed = {"name": "openai", "secret_env": "OPENAI_API_KEY", "base_url": "http://10.0.0.5:8080"}

    response = as_user("admin").post(add_url(release, "openai"), typed)

    said = loader_says(
        tmp_path,
        'name = "openai"\nkind = "openai"\nsecret_env = "OPENAI_API_KEY"\n'
        'base_url = "http://10.0.0.5:8080"\n',
    )
    assert errors(response) == {"base_url": said}
    assert said == [
        "check “openai”: base_url must be an https:// URL; http:// only to this machine "
        "(localhost, 127.0.0.0/8, ::1)"
    ]
    assert 'value="http://10.0.0.5:8080"' in response.content.decode()
    assert not Check.objects.exists()


@pytest.mark.parametrize(
    ("url", "code"),
    [("https://app.example.com/\r\nhealth", "000D"), ("https://app.\x7fexample.com/", "007F")],
)
def test_it_refuses_a_url_holding_a_control_character_in_its_own_words(
    release: Release, as_user: Any, url: str, code: str
) -> None:
    """Python's URL readers answer such a URL in English of their own."""
    response = as_user("admin", "es").post(add_url(release, "http"), {"name": "h", "url": url})

    assert errors(response) == {
        "url": [
            "comprobación “h”: url no debe contener espacios ni caracteres de control "
            f"(contiene U+{code})"
        ]
    }
    assert not Check.objects.exists()


def test_it_refuses_a_url_httpx_cannot_request_in_its_own_words(
    release: Release, as_user: Any
) -> None:
    typed = {"name": "h", "url": "https://1.2.3.999/health"}

    response = as_user("admin", "es").post(add_url(release, "http"), typed)

    assert errors(response) == {
        "url": [
            "comprobación “h”: url no es una URL válida: revisa su host, su puerto y su longitud"
        ]
    }


def test_it_refuses_a_ca_file_holding_no_certificate_and_keeps_one_that_does(
    release: Release, as_user: Any, tmp_path: Path
) -> None:
    not_pem = tmp_path / "shadow"
    not_pem.write_text("root:*:19000:0:99999:7:::\n")
    authority = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(authority))
    client = as_user("admin", "es")
    typed = {"name": "tls", "host": "app.example.com"}

    refused = client.post(add_url(release, "tls"), {**typed, "ca_file": str(not_pem)})
    accepted = client.post(add_url(release, "tls"), {**typed, "ca_file": str(authority)})

    assert errors(refused) == {
        "ca_file": [f"comprobación “tls”: ca_file {not_pem} no contiene ningún certificado PEM"]
    }
    assert accepted.status_code == 302
    assert Check.objects.get().options["ca_file"] == str(authority)


def test_it_reports_every_fault_of_the_form_as_the_loader_words_it(
    release: Release, as_user: Any, tmp_path: Path
) -> None:
    response = as_user("admin").post(
        add_url(release, "tls"), {"name": "TLS Check", "port": "443x", "min_days": "-"}
    )

    said = loader_says(
        tmp_path, 'name = "TLS Check"\nkind = "tls"\nport = "443x"\nmin_days = "-"\n'
    )
    assert errors(response) == {
        "name": [next(line for line in said if line.startswith("check name"))],
        "port": [next(line for line in said if "port" in line)],
        "min_days": [next(line for line in said if "min_days" in line)],
        "host": [next(line for line in said if "needs host" in line)],
    }
    assert len(said) == 4
    assert 'value="443x"' in response.content.decode()


def test_it_runs_the_kinds_own_checks_too(release: Release, as_user: Any, tmp_path: Path) -> None:
    response = as_user("admin").post(
        add_url(release, "http"),
        {"name": "smoke", "url": "https://a.example.com", "conditions": "[STATUS] =="},
    )

    said = loader_says(
        tmp_path,
        'name = "smoke"\nkind = "http"\nurl = "https://a.example.com"\n'
        'conditions = ["[STATUS] =="]\n',
    )
    # Its fault names no option, so it stands above the form, as at the top of the table.
    assert errors(response) == {None: said}
    assert said == ["check “smoke”: condition '[STATUS] ==': nothing is on the right of =="]


def test_it_refuses_a_name_an_active_check_has_and_brings_a_retired_one_back(
    loaded: Release, as_user: Any
) -> None:
    client = as_user("admin")
    taken = client.post(add_url(loaded, "tls"), {"name": "smoke", "host": "x.example.com"})
    assert errors(taken) == {"name": ["check name “smoke” is taken on v1.2.3; edit that check"]}

    client.post(check_url("retire", the_check(loaded, "smoke")))
    back = client.post(
        add_url(loaded, "tls"),
        {
            "name": "smoke",
            "host": "x.example.com",
            "item": [str(item(loaded, "Unit tests pass").pk)],
        },
        follow=True,
    )

    smoke = the_check(loaded, "smoke")
    assert (smoke.kind, smoke.options, smoke.retired_at) == ("tls", {"host": "x.example.com"}, None)
    assert item(loaded, "Unit tests pass").checks == ["smoke"]
    assert "Check smoke is back." in back.content.decode()
    event = AuditEvent.objects.filter(action=AuditAction.CHECK_ADDED, target="smoke").latest("pk")
    assert event.before["retired"] is True
    assert event.after["options"] == {"host": "x.example.com"}


def test_it_refuses_a_new_check_past_the_release_limit(
    loaded: Release, as_user: Any, settings: Any
) -> None:
    settings.CHECKS_MAX_PER_RELEASE = 2

    response = as_user("admin").post(
        add_url(loaded, "tls"), {"name": "third", "host": "h.example.com"}
    )

    assert errors(response) == {
        None: ["v1.2.3 has 2 checks; a release may have at most 2 (CHECKS_MAX_PER_RELEASE)"]
    }


def test_it_words_a_refusal_in_the_readers_language(loaded: Release, as_user: Any) -> None:
    client = as_user("admin", "es")
    before = fingerprint(loaded)

    refused = client.post(
        add_url(loaded, "http"),
        {"name": "h1", "url": "https://a.example.com", "expect_status": "700"},
    )
    mistyped = client.post(add_url(loaded, "tls"), {"name": "tls2", "port": "443x"})
    taken = client.post(add_url(loaded, "tls"), {"name": "smoke", "host": "x.example.com"})
    pasted = client.post(
        add_url(loaded, "openai"), {"name": "ai", "secret_env": "OPENAI_API_KEY", "models": PASTED}
    )

    assert errors(refused) == {
        "expect_status": [
            "comprobación “h1”: expect_status debe ser un estado HTTP entre 100 y 599"
        ]
    }
    assert "expect_status debe ser un estado HTTP entre 100 y 599" in refused.content.decode()
    assert errors(mistyped) == {
        "port": ["comprobación “tls2”: port debe ser un número entero"],
        "host": ["comprobación “tls2”: el tipo tls necesita host"],
    }
    assert errors(taken) == {
        "name": [
            "el nombre de comprobación “smoke” ya está en uso en v1.2.3; edita esa comprobación"
        ]
    }
    assert errors(pasted) == {
        "models": [
            "comprobación “ai”: la opción models lleva una credencial (una clave de OpenAI, "
            "sk-proj-…); nombra en su lugar una variable de entorno"
        ]
    }
    assert fingerprint(loaded) == before


def test_it_words_a_refused_edit_in_the_readers_language(loaded: Release, as_user: Any) -> None:
    smoke = the_check(loaded, "smoke")
    client = as_user("admin", "es")
    form = client.get(check_url("edit", smoke)).context["form"]

    response = client.post(
        check_url("edit", smoke),
        {**form.initial, "conditions": "[STATUS] =="},
    )

    assert errors(response) == {
        None: ["comprobación “smoke”: condición '[STATUS] ==': no hay nada a la derecha de =="]
    }
    assert the_check(loaded, "smoke").options == smoke.options


# --- editing, linking, retiring ------------------------------------------------------------


def test_it_edits_a_check_and_audits_what_changed(loaded: Release, as_user: Any) -> None:
    tls = the_check(loaded, "tls")
    client = as_user("admin")
    form = client.get(check_url("edit", tls)).context["form"]
    assert form.initial["host"] == "app.example.com"
    assert form.initial["item"] == [item(loaded, "TLS certificates installed").pk]

    client.post(
        check_url("edit", tls),
        {
            "host": "www.example.com",
            "min_days": "21",
            "item": [str(item(loaded, "TLS certificates installed").pk)],
            "seen": form.initial["seen"],
        },
    )

    tls.refresh_from_db()
    assert tls.options == {"host": "www.example.com", "min_days": 21}
    assert tls.source == ""
    event = AuditEvent.objects.get(action=AuditAction.CHECK_CHANGED, target="tls")
    assert event.actor_label == "admin"
    assert event.before["options"] == {"host": "app.example.com"}
    assert event.after["options"] == {"host": "www.example.com", "min_days": 21}


def test_it_changes_nothing_when_a_check_is_saved_as_it_was(loaded: Release, as_user: Any) -> None:
    smoke = the_check(loaded, "smoke")
    client = as_user("admin")
    form = client.get(check_url("edit", smoke)).context["form"]
    before = fingerprint(loaded)

    response = client.post(
        check_url("edit", smoke),
        {**form.initial, "item": [str(pk) for pk in form.initial["item"]]},
        follow=True,
    )

    assert "Nothing changed in check smoke." in response.content.decode()
    assert fingerprint(loaded) == before
    assert the_check(loaded, "smoke").source == "checks.toml:7"


def test_it_links_and_unlinks_items_through_the_workflow(loaded: Release, as_user: Any) -> None:
    smoke = the_check(loaded, "smoke")
    kept, added = item(loaded, "Smoke tests in production"), item(loaded, "Unit tests pass")

    as_user("admin").post(
        check_url("edit", smoke),
        {
            "url": smoke.options["url"],
            "conditions": "\n".join(smoke.options["conditions"]),
            "item": [str(kept.pk), str(added.pk)],
        },
    )

    assert item(loaded, "Deploy the backend").checks == []
    assert item(loaded, "Unit tests pass").checks == ["smoke"]
    assert item(loaded, "Smoke tests in production").checks == ["smoke"]
    assert the_check(loaded, "smoke").linked_item_ids == [kept.pk, added.pk]
    linked = AuditEvent.objects.filter(action=AuditAction.CHECKS_LINKED).latest("pk")
    assert (linked.actor_label, linked.after["items"]) == (
        "admin",
        {
            "Unit tests pass": {"before": [], "after": ["smoke"]},
            "Deploy the backend": {"before": ["smoke"], "after": []},
        },
    )
    changed = AuditEvent.objects.get(action=AuditAction.CHECK_CHANGED, target="smoke")
    assert changed.after["items"] == ["Smoke tests in production", "Unit tests pass"]


def test_it_keeps_the_link_an_items_own_marker_makes(loaded: Release, as_user: Any) -> None:
    # The checklist's `<!-- deploycheck: check=tls -->` marker on this item, as imported.
    marked = item(loaded, "Merge everything")
    ReleaseItem.objects.filter(pk=marked.pk).update(checks=["tls"])
    tls = the_check(loaded, "tls")

    page = as_user("admin").get(check_url("edit", tls)).content.decode()
    as_user("admin").post(check_url("edit", tls), {"host": "app.example.com"})

    assert re.search(
        rf'value="{marked.pk}"[^>]*checked[^>]*disabled|value="{marked.pk}"[^>]*disabled', page
    )
    assert item(loaded, "Merge everything").checks == ["tls"]
    assert item(loaded, "TLS certificates installed").checks == []
    assert the_check(loaded, "tls").linked_item_ids == []


def test_it_retires_a_check_and_unlinks_it_but_keeps_its_row(loaded: Release, as_user: Any) -> None:
    smoke = the_check(loaded, "smoke")

    response = as_user("admin").post(check_url("retire", smoke), follow=True)

    smoke.refresh_from_db()
    assert smoke.retired_at is not None
    assert item(loaded, "Deploy the backend").checks == []
    assert item(loaded, "Smoke tests in production").checks == []
    event = AuditEvent.objects.get(action=AuditAction.CHECK_RETIRED, target="smoke")
    assert (event.actor_label, event.after["retired"]) == ("admin", True)
    html = response.content.decode()
    assert "Check smoke retired" in html
    assert "1 retired check" in html


def test_it_refuses_to_retire_a_check_an_items_marker_names(loaded: Release, as_user: Any) -> None:
    ReleaseItem.objects.filter(pk=item(loaded, "Merge everything").pk).update(checks=["tls"])
    before = fingerprint(loaded)

    response = as_user("admin").post(check_url("retire", the_check(loaded, "tls")), follow=True)

    assert "names tls with a check= marker" in response.content.decode()
    assert fingerprint(loaded) == before


# A refused form answers 422, as every refused form does, with what was typed, but for
# a credential, which never comes back to the page.
REFUSED = {
    "a status out of range": (
        "http",
        {"name": "h1", "url": "https://a.example.com", "expect_status": "-1"},
        "expect_status",
        'value="-1"',
    ),
    "a name in use": (
        "tls",
        {"name": "smoke", "host": "x.example.com"},
        "name",
        'value="x.example.com"',
    ),
    "a secret in the url": (
        "http",
        {"name": "h2", "url": "https://a.example.com/?token=abc", "expect_status": "204"},
        "url",
        'value="204"',
    ),
}


@pytest.mark.parametrize(
    ("kind", "typed", "refused", "shown"), REFUSED.values(), ids=REFUSED.keys()
)
def test_a_refused_check_answers_422_and_keeps_what_was_typed(
    loaded: Release, as_user: Any, kind: str, typed: dict[str, str], refused: str, shown: str
) -> None:
    before = fingerprint(loaded)

    response = as_user("admin").post(add_url(loaded, kind), typed)

    html = response.content.decode()
    assert response.status_code == 422
    assert list(errors(response)) == [refused]
    assert f'value="{typed["name"]}"' in html
    assert shown in html
    assert "token=abc" not in html
    assert fingerprint(loaded) == before


def test_a_refused_edit_answers_422_and_keeps_what_was_typed(loaded: Release, as_user: Any) -> None:
    smoke = the_check(loaded, "smoke")
    before = fingerprint(loaded)

    response = as_user("admin").post(
        check_url("edit", smoke), {"url": "https://app.example.com/health", "expect_status": "-1"}
    )

    assert response.status_code == 422
    assert list(errors(response)) == ["expect_status"]
    assert 'value="-1"' in response.content.decode()
    assert fingerprint(loaded) == before


def test_it_refuses_a_stale_edit_and_keeps_what_was_typed(loaded: Release, as_user: Any) -> None:
    tls = the_check(loaded, "tls")
    client = as_user("admin")
    seen = client.get(check_url("edit", tls)).context["form"].initial["seen"]
    client.post(check_url("edit", tls), {"host": "first.example.com", "seen": seen})

    stale = client.post(check_url("edit", tls), {"host": "second.example.com", "seen": seen})

    assert stale.status_code == 409
    assert "Someone changed this check after you opened it" in errors(stale)[None][0]
    assert the_check(loaded, "tls").options == {"host": "first.example.com"}
    assert 'value="second.example.com"' in stale.content.decode()
    again = client.post(
        check_url("edit", tls),
        {"host": "second.example.com", "seen": stale.context["form"]["seen"].value()},
    )
    assert again.status_code == 302
    assert the_check(loaded, "tls").options == {"host": "second.example.com"}


def test_it_answers_404_for_an_unknown_kind_a_bogus_check_or_another_releases_check(
    loaded: Release, as_user: Any, users: dict[str, Any]
) -> None:
    other = workflow.create_release(
        build_small_template("other"), version="v9.9.9", title="Other", by=users["admin"]
    )
    theirs = Check.objects.create(release=other, name="theirs", kind="tls", options={"host": "h"})
    client = as_user("admin")
    version = loaded.version

    answers = [
        client.get(add_url(loaded, "nonsense")),
        client.get(reverse("checks:add", args=[version])),
        client.get(reverse("checks:edit", args=[version, 10**12])),
        client.get(reverse("checks:edit", args=[version, theirs.pk])),
        client.post(reverse("checks:retire", args=[version, theirs.pk])),
        client.post(reverse("checks:test", args=[version, theirs.pk])),
        client.get(reverse("checks:result", args=[version, theirs.pk])),
    ]

    assert [answer.status_code for answer in answers] == [404] * len(answers)
    assert Check.objects.get(pk=theirs.pk).retired_at is None


# --- the download --------------------------------------------------------------------------


def test_it_downloads_checks_that_load_back_as_the_same_checks(
    loaded: Release, as_user: Any, tmp_path: Path, users: dict[str, Any]
) -> None:
    tricky = 'Say "hi" \\ then\ttab — Producción ✓'
    ReleaseItem.objects.filter(pk=item(loaded, "Unit tests pass").pk).update(text=tricky)
    client = as_user("admin")
    client.post(
        add_url(loaded, "openai"),
        {
            "name": "ai",
            "secret_env": "OPENAI_API_KEY",
            "models": "gpt-4o-mini\ngpt-4o",
            "probe": "false",
            "item": [str(item(loaded, tricky).pk)],
        },
    )
    url = reverse("checks:download", args=[loaded.version])

    first = client.get(url)
    path = tmp_path / export.filename(loaded)
    path.write_bytes(first.content)
    rows = rows_of(loaded)
    summary = config.load(path, loaded, by=SYSTEM)
    second = client.get(url)

    assert first["Content-Disposition"] == 'attachment; filename="checks-v1.2.3.toml"'
    assert first.content == second.content
    assert rows_of(loaded) == rows
    assert (summary.created, summary.retired) == ([], [])
    assert 'name = "ai"' in first.content.decode()
    # A fresh release of the same checklist gets the same checks from it.
    assert loaded.template is not None
    fresh = workflow.create_release(
        loaded.template, version="v2.0.0", title="Again", by=users["admin"]
    )
    ReleaseItem.objects.filter(release=fresh, text="Unit tests pass").update(text=tricky)
    config.load(path, fresh, by=SYSTEM)
    assert rows_of(fresh) == rows
    assert export.checks_file(fresh) == second.content.decode().replace("v1.2.3", "v2.0.0")


def test_it_leaves_retired_checks_out_of_the_download(loaded: Release, as_user: Any) -> None:
    client = as_user("admin")
    client.post(check_url("retire", the_check(loaded, "smoke")))

    text = client.get(reverse("checks:download", args=[loaded.version])).content.decode()

    assert 'name = "tls"' in text
    assert "smoke" not in text


# --- testing one check ---------------------------------------------------------------------


def test_it_tests_one_check_through_the_workers_and_shows_its_answer_when_it_comes(
    loaded: Release, as_user: Any, recorder: Recorder, django_capture_on_commit_callbacks: Any
) -> None:
    tls = the_check(loaded, "tls")
    client = as_user("admin")

    with django_capture_on_commit_callbacks(execute=True):
        started = client.post(check_url("test", tls), headers={"HX-Request": "true"})

    run = CheckRun.objects.get()
    [result] = run.results.all()
    assert (result.subject, result.state, run.requested_by_label) == (
        tls,
        ResultState.QUEUED,
        "admin",
    )
    assert recorder.sent == [(result.pk, 1, 0.0)]
    html = started.content.decode()
    assert f'id="result-{tls.pk}"' in html
    assert f'hx-get="{check_url("result", tls)}"' in html
    assert "Testing tls" in html

    CheckResult.objects.filter(pk=result.pk).update(
        state=ResultState.DONE,
        outcome=CheckOutcome.PASS,
        reason=CheckReason.OK,
        evidence="certificate valid for 80 days",
        latency_ms=12,
    )
    answer = client.get(check_url("result", tls)).content.decode()

    assert "Passed" in answer
    assert "certificate valid for 80 days" in answer
    assert "hx-get" not in answer


def test_it_shows_a_results_evidence_in_the_readers_language(loaded: Release, as_user: Any) -> None:
    """The worker stores evidence as a message and its values; the page renders it for
    each reader, and shows an older row's plain English as it was kept."""
    answered = said(
        gettext_noop("%(answer)s; %(held)s"),
        answer=said(gettext_noop("HTTP %(status)s in %(ms)s ms"), status=200, ms=22),
        held=said(gettext_noop("1 condition holds")),
    )
    run = CheckRun.objects.create(
        release=loaded, requested_by_label="t", requested_by_kind="system"
    )
    finished = {"state": ResultState.DONE, "outcome": CheckOutcome.PASS, "run": run}
    CheckResult.objects.create(
        subject=the_check(loaded, "smoke"),
        evidence=answered.english(),
        said=answered.as_json(),
        **finished,
    )
    CheckResult.objects.create(
        subject=the_check(loaded, "tls"), evidence="certificate valid for 80 days", **finished
    )

    spanish = as_user("qa", "es").get(page_url(loaded)).content.decode()
    english = as_user("qa").get(page_url(loaded)).content.decode()

    assert "HTTP 200 en 22 ms; se cumple 1 condición" in spanish
    assert "HTTP 200 in 22 ms" not in spanish
    assert "certificate valid for 80 days" in spanish
    assert "HTTP 200 in 22 ms; 1 condition holds" in english


def test_it_tests_without_javascript_and_says_where_the_answer_appears(
    loaded: Release, as_user: Any, recorder: Recorder, django_capture_on_commit_callbacks: Any
) -> None:
    tls = the_check(loaded, "tls")

    with django_capture_on_commit_callbacks(execute=True):
        response = as_user("admin").post(check_url("test", tls), follow=True)

    assert response.redirect_chain[-1][0] == page_url(loaded) + f"#check-{tls.pk}"
    html = response.content.decode()
    assert "Testing tls: its answer shows here as soon as a worker has it." in html
    assert "reload the page if it does not" in html
    assert len(recorder.sent) == 1


# --- loading a file -------------------------------------------------------------------------


def test_it_audits_each_check_a_file_adds_changes_or_retires(
    loaded: Release, tmp_path: Path
) -> None:
    path = tmp_path / "next.toml"
    path.write_text(GOOD.split("\n\n")[0].replace("app.example.com", "www.example.com") + "\n")

    config.load(path, loaded, by=SYSTEM)

    events = {
        (event.action, event.target): event
        for event in AuditEvent.objects.filter(release=loaded, action__startswith="check.")
    }
    assert set(events) == {
        (AuditAction.CHECK_ADDED, "tls"),
        (AuditAction.CHECK_ADDED, "smoke"),
        (AuditAction.CHECK_CHANGED, "tls"),
        (AuditAction.CHECK_RETIRED, "smoke"),
    }
    changed = events[(AuditAction.CHECK_CHANGED, "tls")]
    assert (changed.actor_label, changed.before["source"], changed.after["source"]) == (
        "tests",
        "checks.toml:1",
        "next.toml:1",
    )
    assert changed.after["options"] == {"host": "www.example.com"}


HOSTILE = ["x" * 5000, str(10**30), "9" * 5000, "-1", "１２", "a\x00b", "[", "{ a = ", "\r\n"]


def test_it_answers_every_hostile_value_of_every_kinds_form_without_a_500(
    loaded: Release, as_user: Any
) -> None:
    client = as_user("admin")
    client.raise_request_exception = False
    tls = the_check(loaded, "tls")
    failures = []
    for kind in REGISTRY.values():
        for key in ["name", *kind.required, *kind.optional, "item"]:
            for value in HOSTILE:
                response = client.post(add_url(loaded, kind.name), {"name": "x", key: value})
                if response.status_code >= 500:
                    failures.append(f"{kind.name}.{key} = {value[:20]!r}")
    for value in HOSTILE:
        for key in ("host", "port", "seen", "item"):
            response = client.post(check_url("edit", tls), {"host": "h.example.com", key: value})
            if response.status_code >= 500:
                failures.append(f"edit {key} = {value[:20]!r}")

    assert failures == []
