"""The notification channels' staff pages: channels added, edited and retired through a
form that notifications.config judges as it judges a notifications file (the same
messages), downloaded as a file that loads back to the same channels, tested against a
real receiver, and the delivery log, where a delivery is handed out again.

The workers are not involved: `sending.enqueue` is replaced by a recorder, so a test sees
exactly what a replay would have sent them.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from notifications import config, delivery, mailing, sending
from notifications.channel_views import PAGE_SIZE
from notifications.models import (
    Attempt,
    Channel,
    Delivery,
    DeliveryState,
    EmailDelivery,
    Event,
)
from releases.models import Release
from tests.checks.standin import Reply, stand_in

from .conftest import make_channel

SECRET = "whsec_" + base64.b64encode(b"a secret of thirty-two bytes ok!").decode()
WHERE = re.compile(r"^.*?:\d+: ")


class Recorder:
    """Stands in for notifications.sending.enqueue: what would have gone to the workers."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, int, float]] = []

    def __call__(self, delivery_id: int, attempt: int, delay: float) -> None:
        self.sent.append((delivery_id, attempt, delay))


@pytest.fixture(autouse=True)
def on_this_machine(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.NOTIFY_ALLOW_PRIVATE = True
    monkeypatch.setenv("OPS_WEBHOOK_SECRET", SECRET)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    sent = Recorder()
    monkeypatch.setattr(sending, "enqueue", sent)
    return sent


@pytest.fixture
def email_recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    sent = Recorder()
    monkeypatch.setattr(sending, "enqueue_email", sent)
    return sent


@pytest.fixture
def as_user(users: dict[str, Any]) -> Any:
    def login(persona: str) -> Client:
        client = Client(headers={"Accept-Language": "en"})
        client.force_login(users[persona])
        return client

    return login


@pytest.fixture
def staff(as_user: Any) -> Client:
    client: Client = as_user("admin")
    return client


def event_of(release: Release, event_type: str = "approval.requested") -> Event:
    return Event.objects.create(
        type=event_type,
        release=release,
        actor_label="po",
        actor_kind="person",
        data={"release": {"version": release.version}},
    )


def failed_delivery(release: Release, channel: Channel, attempts: int = 2) -> Delivery:
    sent = Delivery.objects.create(
        event=event_of(release),
        channel=channel,
        state=DeliveryState.FAILED,
        attempts=attempts,
        last_error="HTTP 404, not retried",
    )
    for number in range(1, attempts + 1):
        Attempt.objects.create(
            delivery=sent,
            number=number,
            outcome="failed",
            http_status=404,
            latency_ms=12,
            error="HTTP 404, not retried",
        )
    return sent


def form_errors(response: Any) -> dict[str, list[str]]:
    return {field: list(errors) for field, errors in response.context["form"].errors.items()}


def file_faults(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "notifications.toml"
    path.write_text(text)
    with pytest.raises(config.NotificationsFileError) as refused:
        config.read(path)
    return [WHERE.sub("", line) for line in refused.value.errors]


# Who may use the pages


@pytest.mark.django_db
def test_only_staff_reach_the_pages(as_user: Any, release: Release, users: Any) -> None:
    channel = make_channel()
    sent = failed_delivery(release, channel)
    mail = EmailDelivery.objects.create(
        event=sent.event, user=users["qa"], address="qa@example.com", state="failed"
    )
    reads = [
        reverse("channels:channels"),
        reverse("channels:add"),
        reverse("channels:edit", args=[channel.pk]),
        reverse("channels:channel-log", args=[channel.pk]),
        reverse("channels:log"),
        reverse("channels:emails"),
        reverse("channels:download"),
    ]
    posts = [
        reverse("channels:retire", args=[channel.pk]),
        reverse("channels:test", args=[channel.pk]),
        reverse("channels:replay", args=[sent.pk]),
        reverse("channels:email-replay", args=[mail.pk]),
    ]
    anonymous = Client()
    for url in [*reads, *posts]:
        answer = anonymous.post(url) if url in posts else anonymous.get(url)
        assert answer.status_code == 302, url
        assert answer["Location"].startswith(reverse("login")), url
    lead = as_user("devops")
    for url in reads:
        assert lead.get(url).status_code == 403, url
    for url in posts:
        assert lead.post(url).status_code == 403, url
    staff = as_user("admin")
    for url in reads:
        assert staff.get(url).status_code == 200, url

    channel.refresh_from_db()
    sent.refresh_from_db()
    assert channel.retired_at is None
    assert sent.state == DeliveryState.FAILED
    mail.refresh_from_db()
    assert mail.state == DeliveryState.FAILED


@pytest.mark.django_db
def test_the_staff_navigation_links_the_channels(as_user: Any) -> None:
    link = f'href="{reverse("channels:channels")}"'

    assert link in as_user("admin").get(reverse("releases:list")).content.decode()
    assert link not in as_user("devops").get(reverse("releases:list")).content.decode()


# The list


@pytest.mark.django_db
def test_the_list_says_where_each_channel_points_and_whether_it_is_on(staff: Client) -> None:
    make_channel("ops")
    make_channel("team", kind="slack", url="", url_env="TEAM_SLACK_URL", secret_env="")
    make_channel(
        "gone",
        url="https://hooks.example.com/gone",
        disabled_at=timezone.now(),
        disabled_reason="the endpoint is gone (HTTP 410)",
    )
    make_channel("old", retired_at=timezone.now())

    answer = staff.get(reverse("channels:channels"))

    page = answer.content.decode()
    assert [row.channel.name for row in answer.context["rows"]] == ["gone", "ops", "team"]
    assert [row.channel.name for row in answer.context["retired"]] == ["old"]
    assert "https://hooks.example.com/deploycheck" in page
    assert "from <code>$TEAM_SLACK_URL</code>" in page
    assert "signed with <code>$OPS_WEBHOOK_SECRET</code>" in page
    assert SECRET not in page
    assert "the endpoint is gone (HTTP 410)" in page


# Adding, editing, retiring


@pytest.mark.django_db
def test_a_channel_is_added_as_a_file_would_declare_it(staff: Client) -> None:
    answer = staff.post(
        reverse("channels:add"),
        {
            "name": "team",
            "kind": "slack",
            "url_env": "TEAM_SLACK_URL",
            "events": ["approval.requested", "deploy.started"],
            "releases": "v2.*",
        },
        follow=True,
    )

    assert "Channel team added." in answer.content.decode()
    team = Channel.objects.get(name="team")
    assert (team.kind, team.url, team.url_env, team.events, team.releases) == (
        "slack",
        "",
        "TEAM_SLACK_URL",
        ["approval.requested", "deploy.started"],
        "v2.*",
    )


@pytest.mark.django_db
def test_bad_input_shows_every_fault_as_the_file_words_it_and_saves_nothing(
    staff: Client, tmp_path: Path
) -> None:
    answer = staff.post(
        reverse("channels:add"),
        {
            "name": "ops",
            "kind": "webhook",
            "url": "http://hooks.example.com/x",
            "secret_env": "not a variable",
            "events": ["approval.requested", "release.exploded"],
            "releases": "",
        },
    )

    assert answer.status_code == 422
    shown = form_errors(answer)
    as_file = file_faults(
        tmp_path,
        '[[channel]]\nname = "ops"\nkind = "webhook"\nurl = "http://hooks.example.com/x"\n'
        'secret_env = "not a variable"\nevents = ["approval.requested", "release.exploded"]\n'
        'releases = ""\n',
    )
    assert sorted(message for messages in shown.values() for message in messages) == sorted(as_file)
    assert set(shown) == {"url", "secret_env", "events", "releases"}
    assert "http:// only to this machine" in shown["url"][0]
    assert "must name an environment variable" in shown["secret_env"][0]
    assert "“release.exploded” is not an event type" in shown["events"][0]
    assert "releases must be a version glob" in shown["releases"][0]
    assert not Channel.objects.exists()


@pytest.mark.django_db
def test_a_missing_name_kind_or_url_is_named(staff: Client) -> None:
    nameless = form_errors(staff.post(reverse("channels:add"), {"kind": "webhook"}))
    assert "needs a name" in nameless["name"][0]

    kindless = form_errors(staff.post(reverse("channels:add"), {"name": "ops"}))
    assert kindless["kind"] == [
        "channel “ops” has no kind; the kinds are email, slack, teams or webhook"
    ]

    nowhere = form_errors(
        staff.post(
            reverse("channels:add"),
            {"name": "ops", "kind": "webhook", "secret_env": "OPS_WEBHOOK_SECRET", "events": ["*"]},
        )
    )
    assert nowhere["url"] == ["channel “ops” needs url or url_env (one of them)"]
    assert not Channel.objects.exists()


@pytest.mark.django_db
def test_a_refusal_and_the_kinds_are_worded_in_the_readers_language(as_user: Any) -> None:
    make_channel("ops")
    make_channel("chat", kind="slack", url="", url_env="CHAT_SLACK_URL", secret_env="")
    client = as_user("admin")
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "es"

    form = client.get(reverse("channels:add")).content.decode()
    answer = client.post(
        reverse("channels:add"),
        {
            "name": "team",
            "kind": "webhook",
            "url": "http://hooks.example.com/x",
            "secret_env": "OPS_WEBHOOK_SECRET",
            "events": ["*"],
            "releases": "*",
        },
    )
    taken = client.post(
        reverse("channels:add"),
        {
            "name": "ops",
            "kind": "email",
            "to": "ops@example.com",
            "events": ["*"],
            "releases": "*",
        },
    )
    listed = client.get(reverse("channels:channels")).content.decode()

    assert "Correo a una lista de direcciones" in form
    assert "E-mail to a list of addresses" not in form
    assert form_errors(answer) == {
        "url": [
            "canal “team”: url debe ser https://; http:// solo hacia esta máquina (un sustituto)"
        ]
    }
    assert form_errors(taken) == {
        "name": ["el nombre de canal “ops” ya está en uso; edita ese canal"]
    }
    assert "Webhook entrante de Slack" in listed
    assert "Slack incoming webhook" not in listed
    assert Channel.objects.count() == 2


@pytest.mark.django_db
def test_a_pasted_secret_is_refused_and_not_shown_back(staff: Client) -> None:
    answer = staff.post(
        reverse("channels:add"),
        {
            "name": "ops",
            "kind": "webhook",
            "url": "https://hooks.example.com/x",
            "secret_env": SECRET,
            "events": ["*"],
            "releases": "*",
        },
    )

    assert form_errors(answer)["secret_env"] == [
        "channel “ops”: secret_env must name an environment variable such as OPS_WEBHOOK_SECRET"
    ]
    assert SECRET not in answer.content.decode()
    assert not Channel.objects.exists()


@pytest.mark.django_db
def test_a_credential_in_the_url_is_refused_without_repeating_it(staff: Client) -> None:
    pasted = "sk-proj-Q2xhdWRlIHNheXMgbm8gc2VjcmV0cyBoZXJl"
    answer = staff.post(
        reverse("channels:add"),
        {
            "name": "ops",
            "kind": "webhook",
            "url": f"https://hooks.example.com/x?key={pasted}",
            "secret_env": "OPS_WEBHOOK_SECRET",
            "events": ["*"],
            "releases": "*",
        },
    )

    [fault] = form_errors(answer)["url"]
    assert fault.startswith("this [[channel]]: url carries a credential")
    assert pasted not in answer.content.decode()
    assert not Channel.objects.exists()


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("https://example.com/x\r\nHost: evil", "U+000D"),
        ("https://example.com/a\nb", "U+000A"),
        ("https://exa mple.com/a", "U+0020"),
    ],
)
@pytest.mark.django_db
def test_a_url_with_a_space_or_a_control_character_is_refused_as_typed(
    staff: Client, url: str, code: str
) -> None:
    answer = staff.post(
        reverse("channels:add"),
        {
            "name": "ops",
            "kind": "webhook",
            "url": url,
            "secret_env": "OPS_WEBHOOK_SECRET",
            "events": ["*"],
            "releases": "*",
        },
    )

    assert answer.status_code == 422
    assert form_errors(answer) == {
        "url": [
            f"channel “ops”: url must not contain spaces or control characters (it holds {code})"
        ]
    }
    assert answer.context["form"]["url"].value() == url
    assert not Channel.objects.exists()


@pytest.mark.django_db
def test_a_slack_url_itself_is_refused_as_the_file_refuses_it(staff: Client) -> None:
    answer = staff.post(
        reverse("channels:add"),
        {
            "name": "team",
            "kind": "slack",
            "url": "https://hooks.slack.com/services/T0/B0/abc",
            "events": ["*"],
            "releases": "*",
        },
    )

    assert "a Slack webhook URL is its own secret" in " ".join(form_errors(answer)["url"])
    assert not Channel.objects.exists()


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://127.0.0.1:9/hook", "127.0.0.1"),
        ("https://localhost/hook", "localhost"),
        ("https://10.1.2.3/hook", "10.1.2.3"),
        ("https://[::1]/hook", "::1"),
        ("https://169.254.169.254/latest", "169.254.169.254"),
    ],
)
@pytest.mark.django_db
def test_an_address_no_delivery_may_reach_is_refused_naming_the_setting(
    staff: Client, settings: Any, tmp_path: Path, url: str, host: str
) -> None:
    settings.NOTIFY_ALLOW_PRIVATE = False
    typed = {
        "name": "ops",
        "kind": "webhook",
        "url": url,
        "secret_env": "OPS_WEBHOOK_SECRET",
        "events": ["approval.requested"],
        "releases": "v2.*",
    }

    answer = staff.post(reverse("channels:add"), typed)

    assert answer.status_code == 422
    assert form_errors(answer) == {
        "url": [
            f"channel “ops”: url points to this machine or a private network ({host}), "
            "which notifications reach only with NOTIFY_ALLOW_PRIVATE=1"
        ]
    }
    form = answer.context["form"]
    assert form["url"].value() == url
    assert form["releases"].value() == "v2.*"
    assert form["secret_env"].value() == "OPS_WEBHOOK_SECRET"
    assert not Channel.objects.exists()
    # The file says the same of it.
    assert (
        file_faults(
            tmp_path,
            f'[[channel]]\nname = "ops"\nkind = "webhook"\nurl = "{url}"\n'
            'secret_env = "OPS_WEBHOOK_SECRET"\n',
        )
        == form_errors(answer)["url"]
    )


@pytest.mark.django_db
def test_a_stand_in_on_this_machine_is_refused_in_spanish_unless_allowed(
    as_user: Any, settings: Any
) -> None:
    client = as_user("admin")
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "es"
    typed = {
        "name": "ops",
        "kind": "webhook",
        "url": "http://127.0.0.1:9/hook",
        "secret_env": "OPS_WEBHOOK_SECRET",
        "events": ["*"],
        "releases": "*",
    }
    settings.NOTIFY_ALLOW_PRIVATE = False

    refused = client.post(reverse("channels:add"), typed)

    assert form_errors(refused) == {
        "url": [
            "canal “ops”: url apunta a esta máquina o a una red privada (127.0.0.1), "
            "adonde solo llegan las notificaciones con NOTIFY_ALLOW_PRIVATE=1"
        ]
    }
    settings.NOTIFY_ALLOW_PRIVATE = True
    assert client.post(reverse("channels:add"), typed).status_code == 302
    assert Channel.objects.get().url == "http://127.0.0.1:9/hook"


@pytest.mark.django_db
def test_a_new_channel_may_not_take_an_active_ones_name(staff: Client) -> None:
    make_channel("ops")
    answer = staff.post(
        reverse("channels:add"),
        {
            "name": "ops",
            "kind": "webhook",
            "url": "https://hooks.example.com/other",
            "secret_env": "OPS_WEBHOOK_SECRET",
            "events": ["*"],
            "releases": "*",
        },
    )

    assert form_errors(answer)["name"] == ["channel name “ops” is taken; edit that channel"]
    assert Channel.objects.get().url == "https://hooks.example.com/deploycheck"


@pytest.mark.django_db
def test_editing_leaves_the_other_channels_be(staff: Client) -> None:
    ops = make_channel("ops")
    make_channel("other")
    form = staff.get(reverse("channels:edit", args=[ops.pk])).context["form"]

    answer = staff.post(
        reverse("channels:edit", args=[ops.pk]),
        {
            "kind": "webhook",
            "url": "https://hooks.example.com/moved",
            "secret_env": "OPS_WEBHOOK_SECRET",
            "events": ["deploy.started"],
            "releases": "v3.*",
            "seen": form.initial["seen"],
        },
        follow=True,
    )

    assert "Channel ops saved." in answer.content.decode()
    ops.refresh_from_db()
    assert (ops.url, ops.events, ops.releases) == (
        "https://hooks.example.com/moved",
        ["deploy.started"],
        "v3.*",
    )
    assert Channel.objects.get(name="other").active


@pytest.mark.django_db
def test_a_new_url_turns_a_channel_gone_with_410_on_again(staff: Client) -> None:
    ops = make_channel(disabled_at=timezone.now(), disabled_reason="the endpoint is gone")
    edit = reverse("channels:edit", args=[ops.pk])
    values = {
        "kind": "webhook",
        "url": ops.url,
        "secret_env": "OPS_WEBHOOK_SECRET",
        "events": ["*"],
        "releases": "*",
    }

    staff.post(edit, {**values, "releases": "v1.*", "seen": config.seen_token(ops)})
    ops.refresh_from_db()
    assert ops.disabled_at is not None  # the same URL: still gone

    answer = staff.post(
        edit,
        {**values, "url": "https://hooks.example.com/new", "seen": config.seen_token(ops)},
        follow=True,
    )

    assert "Channel ops saved, and on again." in answer.content.decode()
    ops.refresh_from_db()
    assert ops.active
    assert ops.disabled_reason == ""


@pytest.mark.django_db
def test_a_stale_edit_is_refused_and_keeps_what_was_typed(staff: Client) -> None:
    ops = make_channel()
    edit = reverse("channels:edit", args=[ops.pk])
    seen = staff.get(edit).context["form"].initial["seen"]
    values = {"kind": "webhook", "secret_env": "OPS_WEBHOOK_SECRET", "events": ["*"]}
    staff.post(edit, {**values, "url": "https://first.example.com/", "releases": "*", "seen": seen})

    stale = staff.post(
        edit, {**values, "url": "https://second.example.com/", "releases": "*", "seen": seen}
    )

    assert stale.status_code == 422
    assert "Someone changed this channel after you opened it" in stale.content.decode()
    assert stale.context["form"]["url"].value() == "https://second.example.com/"
    assert Channel.objects.get().url == "https://first.example.com/"

    staff.post(
        edit,
        {
            **values,
            "url": "https://second.example.com/",
            "releases": "*",
            "seen": stale.context["form"]["seen"].value(),
        },
    )
    assert Channel.objects.get().url == "https://second.example.com/"


@pytest.mark.django_db
def test_a_retired_channel_stays_listed_and_comes_back_when_saved(staff: Client) -> None:
    ops = make_channel()

    answer = staff.post(reverse("channels:retire", args=[ops.pk]), follow=True)

    assert "Channel ops retired" in answer.content.decode()
    ops.refresh_from_db()
    assert ops.retired_at is not None
    again = staff.post(reverse("channels:retire", args=[ops.pk]), follow=True)
    assert "Channel ops was retired already." in again.content.decode()

    back = staff.post(
        reverse("channels:edit", args=[ops.pk]),
        {
            "kind": "webhook",
            "url": ops.url,
            "secret_env": "OPS_WEBHOOK_SECRET",
            "events": ["*"],
            "releases": "*",
            "seen": config.seen_token(ops),
        },
        follow=True,
    )
    assert "Channel ops is back." in back.content.decode()
    assert Channel.objects.get().active


# The file


@pytest.mark.django_db
def test_an_email_channel_is_added_with_its_addresses_and_language(staff: Client) -> None:
    fields = {"name": "people", "kind": "email", "language": "en", "events": ["*"],
              "releases": "*"}  # fmt: skip

    refused = staff.post(reverse("channels:add"), {**fields, "to": "ops@example.com\nnot-mail"})

    assert refused.status_code == 422
    assert "“not-mail” is not an e-mail address" in refused.content.decode()
    assert not Channel.objects.exists()

    staff.post(reverse("channels:add"), {**fields, "to": "ops@example.com\nlist@example.org"})

    people = Channel.objects.get(name="people")
    assert (people.kind, people.addresses, people.language, people.url) == (
        "email",
        ["ops@example.com", "list@example.org"],
        "en",
        "",
    )
    listed = staff.get(reverse("channels:channels")).content.decode()
    assert "<code>ops@example.com</code>, <code>list@example.org</code>" in listed


@pytest.mark.django_db
def test_the_download_loads_back_to_the_same_channels(staff: Client, tmp_path: Path) -> None:
    make_channel("ops", events=["approval.requested", "deploy.started"], releases="v2.*")
    make_channel("team", kind="slack", url="", url_env="TEAM_SLACK_URL", secret_env="")
    make_channel("room", kind="teams", url='https://example.com/flow?a="1"&b=\\', secret_env="")
    make_channel(
        "gone",
        url="https://hooks.example.com/gone",
        disabled_at=timezone.now(),
        disabled_reason="the endpoint is gone (HTTP 410)",
    )
    make_channel("old", retired_at=timezone.now())
    make_channel("people", kind="email", url="", secret_env="", language="en",
                 addresses=["ops@example.com", "Team.List@example.org"])  # fmt: skip
    fields = ("name", "kind", "url", "url_env", "secret_env", "events", "releases",
              "addresses", "language")  # fmt: skip
    state = ("disabled_at", "disabled_reason", "retired_at")
    before = list(Channel.objects.order_by("name").values(*fields, *state))

    answer = staff.get(reverse("channels:download"))

    assert answer["Content-Disposition"] == 'attachment; filename="notifications.toml"'
    path = tmp_path / "notifications.toml"
    path.write_bytes(answer.content)
    summary = config.load(path)
    assert (summary.created, summary.updated, summary.retired) == ([], [], [])
    assert list(Channel.objects.order_by("name").values(*fields, *state)) == before

    Channel.objects.all().delete()
    config.load(path)
    assert list(Channel.objects.order_by("name").values(*fields)) == [
        {key: row[key] for key in fields} for row in before if row["retired_at"] is None
    ]


# Sending a test


@pytest.mark.django_db
def test_a_test_shows_the_receivers_real_answer_escaped(staff: Client) -> None:
    with stand_in(lambda request: Reply(200, body="<b>thanks</b>")) as server:
        ops = make_channel(url=f"{server.url}/hook")
        answer = staff.post(reverse("channels:test", args=[ops.pk]))

    [request] = server.requests
    assert json.loads(request.body)["data"]["sender"] == "admin"
    page = answer.content.decode()
    assert answer.status_code == 200
    assert "200" in page
    assert "&lt;b&gt;thanks&lt;/b&gt;" in page
    assert "<b>thanks</b>" not in page
    assert " ms" in page
    assert "accepted by the receiver; what it does with the event is not confirmed" in page
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_a_teams_202_is_shown_as_not_confirmed(staff: Client) -> None:
    with stand_in(lambda request: Reply(202)) as server:
        room = make_channel("room", kind="teams", url=f"{server.url}/flow", secret_env="")
        page = staff.post(reverse("channels:test", args=[room.pk])).content.decode()

    assert "accepted by the Workflow; posting to the channel is not confirmed" in page


@pytest.mark.django_db
def test_the_confirmed_sentence_speaks_the_readers_language(as_user: Any) -> None:
    with stand_in(lambda request: Reply(202)) as server:
        room = make_channel("room", kind="teams", url=f"{server.url}/flow", secret_env="")
        client = as_user("admin")
        client.defaults["HTTP_ACCEPT_LANGUAGE"] = "es"
        page = client.post(reverse("channels:test", args=[room.pk])).content.decode()

    assert "aceptado por el Workflow; la publicación en el canal no está confirmada" in page


@pytest.mark.django_db
def test_a_test_refused_before_sending_says_nothing_was_sent_and_why(staff: Client) -> None:
    with stand_in(lambda request: Reply(200)) as server:
        ops = make_channel(url=f"{server.url}/hook", secret_env="NOT_SET_ANYWHERE")
        answer = staff.post(reverse("channels:test", args=[ops.pk]))

    page = answer.content.decode()
    assert server.requests == []
    assert answer.status_code == 422
    assert "No test event was sent" in page
    assert "A test event was sent now" not in page
    assert "none: no answer came" in page
    assert "not sent: NOT_SET_ANYWHERE, which holds the signing secret, is not set" in page


@pytest.mark.django_db
def test_a_test_to_a_url_that_cannot_be_sent_says_nothing_was_sent(as_user: Any) -> None:
    # Saved before such URLs were refused.
    ops = make_channel(url="https://example.com/a\nb")
    client = as_user("admin")
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "es"

    answer = client.post(reverse("channels:test", args=[ops.pk]))

    page = answer.content.decode()
    assert answer.status_code == 422
    assert "No se envió ningún evento de prueba" in page
    assert "Se acaba de enviar" not in page
    assert "no enviado: la URL no es válida" in page


@pytest.mark.django_db
def test_a_tests_failure_speaks_the_readers_language(as_user: Any, settings: Any) -> None:
    client = as_user("admin")
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "es"
    with stand_in(lambda request: Reply(401)) as server:
        settings.NOTIFY_ALLOW_PRIVATE = True
        ops = make_channel(url=f"{server.url}/hook")
        refused = client.post(reverse("channels:test", args=[ops.pk])).content.decode()
        settings.NOTIFY_ALLOW_PRIVATE = False
        private = client.post(reverse("channels:test", args=[ops.pk])).content.decode()

    assert "no entregado: HTTP 401, no se reintenta" in refused
    assert "not retried" not in refused
    assert "127.0.0.1 resuelve a 127.0.0.1, una dirección privada" in private
    assert "NOTIFY_ALLOW_PRIVATE=1" in private
    assert "a private, loopback" not in private


@pytest.mark.django_db
def test_switching_the_language_on_a_test_result_returns_to_the_channels(staff: Client) -> None:
    ops = make_channel(url="http://127.0.0.1:9/hook", secret_env="NOT_SET_ANYWHERE")
    channels = reverse("channels:channels")

    result = staff.post(
        reverse("channels:test", args=[ops.pk]), headers={"Referer": f"http://testserver{channels}"}
    )
    switched = staff.post(
        reverse("releases:language"), {"language": "es", "next": language_next(result)}
    )

    assert switched.status_code == 302
    assert switched["Location"] == channels
    assert staff.get(channels).status_code == 200


@pytest.mark.django_db
def test_a_test_result_without_a_referer_switches_language_to_the_releases(
    staff: Client,
) -> None:
    ops = make_channel(url="http://127.0.0.1:9/hook", secret_env="NOT_SET_ANYWHERE")

    result = staff.post(reverse("channels:test", args=[ops.pk]))

    assert language_next(result) == reverse("releases:list")


@pytest.mark.django_db
def test_a_test_results_address_opened_again_sends_nothing_and_shows_the_channel(
    staff: Client,
) -> None:
    with stand_in(lambda request: Reply(200)) as server:
        ops = make_channel(url=f"{server.url}/hook")
        answer = staff.get(reverse("channels:test", args=[ops.pk]))

    assert answer.status_code == 302
    assert answer["Location"] == f"{reverse('channels:channels')}#channel-{ops.pk}"
    assert server.requests == []


def language_next(page: Any) -> str:
    """Where the page's language switcher goes back to."""
    found = re.search(r'<input type="hidden" name="next" value="([^"]*)">', page.content.decode())
    assert found is not None
    return found.group(1)


# The log


@pytest.mark.django_db
def test_the_log_shows_each_attempt_newest_first(staff: Client, release: Release) -> None:
    ops = make_channel()
    sent = failed_delivery(release, ops, attempts=2)

    answer = staff.get(reverse("channels:channel-log", args=[ops.pk]))

    rows = answer.context["rows"]
    assert [row.attempt.number for row in rows] == [2, 1]
    assert [row.latest for row in rows] == [True, False]
    page = answer.content.decode()
    assert "Ready for go-live approval" in page
    assert release.version in page
    assert str(sent.event_id) in page
    assert "HTTP 404, not retried" in page
    assert "12 ms" in page
    assert "UTC" in page
    assert page.count(reverse("channels:replay", args=[sent.pk])) == 1


@pytest.mark.django_db
def test_the_log_says_a_printed_mail_was_sent_to_nobody(staff: Client, release: Release) -> None:
    team = make_channel("team", kind="email", url="", secret_env="", addresses=["ops@example.com"])
    printed = Delivery.objects.create(
        event=event_of(release), channel=team, state=DeliveryState.ACCEPTED, attempts=1
    )
    Attempt.objects.create(delivery=printed, number=1, outcome="accepted", latency_ms=3)

    page = staff.get(reverse("channels:channel-log", args=[team.pk])).content.decode()

    assert "Printed on the server&#x27;s output (EMAIL_URL is console://)" in page


@pytest.mark.django_db
def test_the_log_the_channels_and_the_mails_say_what_failed_in_the_readers_language(
    as_user: Any, release: Release, users: Any
) -> None:
    """What a worker recorded in English reads in the reader's language: an attempt's
    error, a channel's reason for being off, a mail only printed. A server's own words
    read as they came."""
    with stand_in(lambda request: Reply(401)) as server:
        ops = make_channel(url=f"{server.url}/hook")
        sent = Delivery.objects.create(event=event_of(release), channel=ops)
        delivery.deliver(sent.pk, 1, enqueue=Recorder())
    gone = make_channel(
        "gone", disabled_at=timezone.now(), disabled_reason="the endpoint is gone (HTTP 410)"
    )
    EmailDelivery.objects.create(
        event=event_of(release),
        user=users["qa"],
        address="qa@example.com",
        state=DeliveryState.ACCEPTED,
        attempts=1,
        last_error=mailing.PRINTED_ONLY,
    )
    EmailDelivery.objects.create(
        event=event_of(release, "deploy.started"),
        user=users["po"],
        address="po@example.com",
        state=DeliveryState.FAILED,
        attempts=6,
        last_error="SMTP 550 mailbox unavailable",
    )
    client = as_user("admin")
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "es"

    log = client.get(reverse("channels:channel-log", args=[ops.pk])).content.decode()
    channels = client.get(reverse("channels:channels")).content.decode()
    edit = client.get(reverse("channels:edit", args=[gone.pk])).content.decode()
    mails = client.get(reverse("channels:emails")).content.decode()

    assert Attempt.objects.get().error == "HTTP 401, not retried"
    assert "HTTP 401, no se reintenta" in log
    assert "not retried" not in log
    for page in (channels, edit):
        assert "el endpoint ya no existe (HTTP 410)" in page
        assert "the endpoint is gone" not in page
    assert "ningún servidor de correo lo recibió" in mails
    assert "no mail server took it" not in mails
    assert "SMTP 550 mailbox unavailable" in mails


@pytest.mark.django_db
def test_the_log_pages_and_filters(staff: Client, release: Release) -> None:
    ops = make_channel()
    other = make_channel("other")
    sent = Delivery.objects.create(event=event_of(release), channel=ops, attempts=PAGE_SIZE + 5)
    Attempt.objects.bulk_create(
        Attempt(
            delivery=sent,
            number=number,
            outcome="retry" if number % 2 else "failed",
            http_status=503 if number % 2 else 404,
        )
        for number in range(1, PAGE_SIZE + 6)
    )
    delivered = Delivery.objects.create(event=event_of(release), channel=other, attempts=1)
    Attempt.objects.create(delivery=delivered, number=1, outcome="delivered", http_status=200)
    log = reverse("channels:log")

    first = staff.get(log)
    assert len(first.context["rows"]) == PAGE_SIZE
    assert len(staff.get(log, {"page": 2}).context["rows"]) == 6
    assert len(staff.get(reverse("channels:channel-log", args=[ops.pk])).context["rows"]) == (
        PAGE_SIZE
    )
    only = staff.get(log, {"outcome": "delivered"})
    assert [row.attempt.delivery.channel.name for row in only.context["rows"]] == ["other"]

    beyond = staff.get(log, {"page": 3})
    assert beyond.status_code == 404
    assert "There is no page 3: the pages go from 1 to 2." in beyond.content.decode()
    garbled = staff.get(log, {"page": "<x>"})
    assert garbled.status_code == 404
    assert "“&lt;x&gt;” is not a page number." in garbled.content.decode()

    unknown = staff.get(log, {"outcome": "exploded"})
    assert unknown.status_code == 200
    assert unknown.context["form"].errors["outcome"]
    assert len(unknown.context["rows"]) == PAGE_SIZE


@pytest.mark.django_db
def test_the_email_log_shows_each_mail(staff: Client, release: Release, users: Any) -> None:
    EmailDelivery.objects.create(
        event=event_of(release),
        user=users["qa"],
        address="qa@example.com",
        state=DeliveryState.FAILED,
        attempts=6,
        last_error="SMTP 550 mailbox unavailable",
    )
    EmailDelivery.objects.create(
        event=event_of(release, "deploy.started"),
        user=users["po"],
        address="po@example.com",
        state=DeliveryState.DELIVERED,
        attempts=1,
        message_id="<abc@deploycheck>",
    )

    page = staff.get(reverse("channels:emails")).content.decode()
    failed = staff.get(reverse("channels:emails"), {"state": "failed"}).content.decode()

    for text in ("qa@example.com", "SMTP 550 mailbox unavailable", "&lt;abc@deploycheck&gt;"):
        assert text in page
    assert "Deploy started" in page
    assert "po@example.com" not in failed


# Replay


@pytest.mark.django_db
def test_a_replay_hands_the_same_event_out_again_as_the_next_attempt(
    staff: Client, release: Release, recorder: Recorder
) -> None:
    with stand_in(lambda request: Reply(204)) as server:
        ops = make_channel(url=f"{server.url}/hook")
        sent = failed_delivery(release, ops, attempts=2)
        log = reverse("channels:channel-log", args=[ops.pk])

        answer = staff.post(reverse("channels:replay", args=[sent.pk]), {"next": log}, follow=True)

        assert answer.redirect_chain[-1][0] == log
        assert "as attempt 3, with the same event id" in answer.content.decode()
        sent.refresh_from_db()
        assert (sent.state, sent.attempts, sent.last_error) == (DeliveryState.PENDING, 2, "")
        assert sent.replayed_by == "admin"
        assert recorder.sent == [(sent.pk, 3, 0.0)]

        delivery.deliver(sent.pk, 3, enqueue=recorder)

    [request] = server.requests
    assert request.header("webhook-id") == str(sent.event_id)
    sent.refresh_from_db()
    assert sent.state == DeliveryState.DELIVERED
    assert list(sent.log.order_by("number").values_list("number", "outcome")) == [
        (1, "failed"),
        (2, "failed"),
        (3, "delivered"),
    ]
    assert Delivery.objects.count() == 1
    assert "replayed by admin" in staff.get(log).content.decode()


@pytest.mark.django_db
def test_a_delivery_being_sent_is_not_replayed(
    staff: Client, release: Release, recorder: Recorder
) -> None:
    sent = failed_delivery(release, make_channel())
    Delivery.objects.filter(pk=sent.pk).update(state=DeliveryState.SENDING)

    answer = staff.post(reverse("channels:replay", args=[sent.pk]), follow=True)

    assert "It is being sent right now" in answer.content.decode()
    assert recorder.sent == []
    sent.refresh_from_db()
    assert sent.state == DeliveryState.SENDING


@pytest.mark.django_db
def test_a_retired_channels_delivery_is_not_replayed(
    staff: Client, release: Release, recorder: Recorder
) -> None:
    sent = failed_delivery(release, make_channel(retired_at=timezone.now()))

    answer = staff.post(reverse("channels:replay", args=[sent.pk]), follow=True)

    assert "Channel ops is retired" in answer.content.decode()
    assert recorder.sent == []
    sent.refresh_from_db()
    assert (sent.state, sent.replayed_by) == (DeliveryState.FAILED, "")


@pytest.mark.django_db
def test_a_replay_asked_elsewhere_goes_back_to_the_log(
    staff: Client, release: Release, recorder: Recorder
) -> None:
    sent = failed_delivery(release, make_channel())

    answer = staff.post(
        reverse("channels:replay", args=[sent.pk]), {"next": "https://evil.example.com/"}
    )

    assert answer["Location"] == reverse("channels:channel-log", args=[sent.channel_id])


@pytest.mark.django_db
def test_an_email_is_replayed_as_its_next_attempt(
    staff: Client, release: Release, users: Any, email_recorder: Recorder
) -> None:
    mail = EmailDelivery.objects.create(
        event=event_of(release),
        user=users["qa"],
        address="qa@example.com",
        state=DeliveryState.FAILED,
        attempts=6,
        last_error="SMTP 550",
    )

    answer = staff.post(reverse("channels:email-replay", args=[mail.pk]), follow=True)

    assert "The e-mail to qa@example.com is handed out again, as attempt 7." in (
        answer.content.decode()
    )
    mail.refresh_from_db()
    assert (mail.state, mail.last_error, mail.replayed_by) == (DeliveryState.PENDING, "", "admin")
    assert email_recorder.sent == [(mail.pk, 7, 0.0)]
