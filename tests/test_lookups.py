"""The hand-built reads of a request's session, person and release give what the ORM
gives, and refuse what Django's own backends refuse."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import BACKEND_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.models import Session
from django.forms.models import model_to_dict
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from deploycheck.lookups import SessionStore, UserBackend, fetch_one
from releases.models import Release


def test_a_release_read_by_hand_equals_the_orm_s(release: Release) -> None:
    Release.objects.filter(pk=release.pk).update(contacts_header=["Rol", "Nombre"])
    by_hand = fetch_one(Release, "{version} = %s", [release.version])
    by_orm = Release.objects.get(pk=release.pk)
    assert by_hand is not None
    assert model_to_dict(by_hand) == model_to_dict(by_orm)
    assert by_hand.contacts_header == ["Rol", "Nombre"]
    assert by_hand.created_at == by_orm.created_at and by_hand.created_at.tzinfo is not None
    assert by_hand._state.adding is False and by_hand._state.db == "default"


def test_no_row_is_none(db: Any) -> None:
    assert fetch_one(Release, "{version} = %s", ["v9.9.9"]) is None


def test_a_live_session_loads_and_an_expired_one_does_not(db: Any) -> None:
    store = SessionStore()
    store["answer"] = 42
    store.create()
    assert SessionStore(store.session_key).load() == {"answer": 42}

    Session.objects.filter(pk=store.session_key).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )
    expired = SessionStore(store.session_key)
    assert expired.load() == {}
    # As Django's store does: the stale key is dropped, a save makes a new one.
    assert expired.session_key is None


def test_an_unknown_session_key_loads_nothing(db: Any) -> None:
    store = SessionStore("x" * 32)
    assert store.load() == {}
    assert store.session_key is None


def test_the_backend_reads_the_person_and_refuses_what_modelbackend_refuses(
    users: dict[str, Any],
) -> None:
    backend = UserBackend()
    qa = users["qa"]
    assert backend.get_user(qa.pk) == qa
    assert backend.get_user(str(qa.pk)).username == "qa"
    assert backend.get_user(10**9) is None
    assert backend.get_user("not a number") is None
    get_user_model().objects.filter(pk=qa.pk).update(is_active=False)
    assert backend.get_user(qa.pk) is None


def test_a_login_goes_through_both(users: dict[str, Any]) -> None:
    client = Client()
    client.post(reverse("login"), {"username": "qa", "password": "pw"})
    session = SessionStore(client.cookies["sessionid"].value).load()
    assert session[SESSION_KEY] == str(users["qa"].pk)
    assert session[BACKEND_SESSION_KEY] == "deploycheck.lookups.UserBackend"
    assert client.get(reverse("releases:list")).status_code == 200
    client.post(reverse("logout"))
    assert client.get(reverse("releases:list")).status_code == 302
