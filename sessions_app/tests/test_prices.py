"""Price overrides, the time zone and the budget: who may change them, the re-pricing each change
starts (with its progress), and `manage.py reprice` resuming where it stopped."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts.models import Workspace
from accounts.tests.factories import team_with
from opensync.jobs import JobStatus
from sessions_app import rollups, services
from sessions_app.models import PriceOverride, RepricingJob, Session, Source
from sessions_app.tests.factories import SessionFactory

pytestmark = pytest.mark.django_db

MODEL = "claude-sonnet-4-5-20250929"
BOOK = Decimal(1_000_000 * 3 + 100_000 * 15) / 1_000_000  # the price book: $3 in, $15 out per M


@pytest.fixture
def session(user, personal_workspace):
    return SessionFactory(owner=user, workspace=personal_workspace, source=Source.OPENCODE, model=MODEL,
                          prompt_tokens=1_000_000, completion_tokens=100_000,
                          created_at=datetime(2026, 6, 1, 12, tzinfo=UTC))  # fmt: skip


def add_price(client, **fields):
    data = {"action": "add", "model_pattern": MODEL, "input_per_m": "1", "output_per_m": "5",
            "effective_from": "2026-01-01"} | fields  # fmt: skip
    return client.post(reverse("sessions:prices"), data)


def test_an_override_reprices_its_sessions_with_progress(logged_in, session, django_capture_on_commit_callbacks):
    assert session.cost == BOOK
    with django_capture_on_commit_callbacks(execute=True):
        response = add_price(logged_in, note="negotiated")
    assert response.status_code == 302 and response.url.endswith("#repricing")
    session.refresh_from_db()
    assert session.cost == Decimal("1.5")  # 1M × $1 + 100K × $5
    assert session.price_model.startswith("override #")
    job = RepricingJob.objects.get()
    assert (job.status, job.total, job.processed, job.changed, job.model_pattern) == (JobStatus.DONE, 1, 1, 1, MODEL)
    page = logged_in.get(reverse("sessions:prices")).content.decode()
    assert "negotiated" in page and "1 session priced, 1 changed" in page
    progress = logged_in.get(reverse("sessions:repricing-job", args=[job.pk]))
    assert progress.status_code == 200 and 'aria-valuenow="100"' in progress.content.decode()
    assert rollups.check(session.workspace_id) == 0


def test_a_running_reprice_polls_its_progress(logged_in, session, personal_workspace):
    job = RepricingJob.objects.create(workspace=personal_workspace, status=JobStatus.RUNNING, total=200, processed=50)
    html = logged_in.get(reverse("sessions:repricing-job", args=[job.pk])).content.decode()
    assert 'hx-trigger="every 1s"' in html and 'aria-valuenow="25"' in html and "50 of 200 sessions" in html


def test_editing_a_price_to_another_model_reprices_both(logged_in, user, personal_workspace, session,
                                                        django_capture_on_commit_callbacks):  # fmt: skip
    other = SessionFactory(owner=user, workspace=personal_workspace, source=Source.OPENCODE, model="gpt-5",
                           prompt_tokens=1_000_000, created_at=session.created_at)  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        add_price(logged_in)
    override = PriceOverride.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in.post(
            reverse("sessions:price-edit", args=[override.pk]),
            {"model_pattern": "gpt-5*", "input_per_m": "0", "output_per_m": "0", "effective_from": "2026-01-01"},
        )
    assert response.status_code == 302
    session.refresh_from_db()
    other.refresh_from_db()
    assert session.cost == BOOK  # back to the price book
    assert (other.cost, other.cost_source) == (Decimal("0"), "computed")  # a self-hosted model at $0
    assert sorted(RepricingJob.objects.values_list("model_pattern", flat=True)) == [MODEL, MODEL, "gpt-5*"]


def test_removing_a_price_asks_first_then_reprices(logged_in, session, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        add_price(logged_in)
    override = PriceOverride.objects.get()
    confirm = logged_in.get(reverse("sessions:price-delete", args=[override.pk]))
    assert confirm.status_code == 200 and "Remove and re-price" in confirm.content.decode()
    assert PriceOverride.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        logged_in.post(reverse("sessions:price-delete", args=[override.pk]))
    session.refresh_from_db()
    assert not PriceOverride.objects.exists() and session.cost == BOOK


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"model_pattern": "*"}, "Name a model"),
        ({"model_pattern": "a*b"}, "Only a trailing"),
        ({"input_per_m": "-1"}, "greater than or equal to 0"),
        ({"effective_from": "soon"}, "Enter a valid date"),
        ({"output_per_m": ""}, "This field is required"),
        ({"output_per_m": "100001"}, "less than or equal to 100000"),
        ({"effective_from": "1970-01-01"}, "between 2000 and 2100"),
        ({"effective_from": "9999-12-31"}, "between 2000 and 2100"),
    ],
)
def test_bad_prices_get_a_form_error(logged_in, session, fields, message):
    response = add_price(logged_in, **fields)
    assert response.status_code == 422
    assert message in response.content.decode()
    assert not PriceOverride.objects.exists()


def test_the_same_model_and_date_twice_is_refused(logged_in, session, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        add_price(logged_in)
    response = add_price(logged_in)
    assert response.status_code == 422 and "already has a price from that date" in response.content.decode()


def test_members_see_prices_but_cannot_change_them(client, user, other_user):
    team = team_with(user, name="T", member=other_user)
    override = PriceOverride.objects.create(workspace=team, model_pattern="x", input_per_m=1, output_per_m=1,
                                            effective_from=datetime(2026, 1, 1, tzinfo=UTC))  # fmt: skip
    client.force_login(other_user)
    client.post(reverse("accounts:workspace-switch"), {"workspace": team.pk})
    page = client.get(reverse("sessions:prices")).content.decode()
    assert "Only the workspace's admins can change these" in page and 'name="action"' not in page
    assert add_price(client).status_code == 422
    assert client.post(reverse("sessions:prices"), {"action": "settings", "timezone": "UTC"}).status_code == 422
    assert client.get(reverse("sessions:price-edit", args=[override.pk])).status_code == 403
    assert client.post(reverse("sessions:price-delete", args=[override.pk])).status_code == 403
    assert PriceOverride.objects.filter(pk=override.pk).exists()


def test_another_workspaces_price_is_a_404(logged_in, other_user):
    foreign = Workspace.objects.get(created_by=other_user, is_personal=True)
    override = PriceOverride.objects.create(workspace=foreign, model_pattern="x", input_per_m=1, output_per_m=1,
                                            effective_from=datetime(2026, 1, 1, tzinfo=UTC))  # fmt: skip
    assert logged_in.get(reverse("sessions:price-edit", args=[override.pk])).status_code == 404
    job = RepricingJob.objects.create(workspace=foreign)
    assert logged_in.get(reverse("sessions:repricing-job", args=[job.pk])).status_code == 404


def test_time_zone_and_budget(logged_in, personal_workspace, user, django_capture_on_commit_callbacks):
    late = SessionFactory(owner=user, workspace=personal_workspace, prompt_tokens=5,
                          created_at=datetime(2026, 3, 1, 23, 30, tzinfo=UTC))  # fmt: skip
    assert rollups.stored(personal_workspace.pk).popitem()[0][1].isoformat() == "2026-03-01"
    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in.post(
            reverse("sessions:prices"), {"action": "settings", "timezone": "Asia/Tokyo", "monthly_budget": "250"}
        )
    assert response.status_code == 302
    personal_workspace.refresh_from_db()
    assert (personal_workspace.timezone, personal_workspace.monthly_budget) == ("Asia/Tokyo", Decimal("250"))
    # the rollups were rebuilt: the session now counts on March 2nd (Tokyo)
    assert rollups.check(personal_workspace.pk) == 0
    assert rollups.stored(personal_workspace.pk).popitem()[0][1].isoformat() == "2026-03-02"
    bad = logged_in.post(reverse("sessions:prices"), {"action": "settings", "timezone": "Mars/Olympus"})
    assert bad.status_code == 422 and "Select a valid choice" in bad.content.decode()
    assert late.pk


def test_the_price_lookup_says_when_a_model_is_unknown(logged_in):
    html = logged_in.get(reverse("sessions:prices"), {"check": MODEL}).content.decode()
    assert "claude-sonnet-4-5 · anthropic" in html and "input $3" in html
    html = logged_in.get(reverse("sessions:prices"), {"check": "my-finetune"}).content.decode()
    assert "is not in the price book" in html


def test_staff_set_instance_wide_prices_in_the_admin(admin_client, user, session, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:sessions_app_priceoverride_add"),
            {
                "model_pattern": "claude-sonnet-4-5*",
                "input_per_m": "2",
                "output_per_m": "10",
                "effective_from_0": "2026-01-01",
                "effective_from_1": "00:00:00",
                "note": "",
            },  # fmt: skip
        )
    assert response.status_code == 302, response.content[:2000]
    override = PriceOverride.objects.get()
    assert override.workspace is None
    session.refresh_from_db()
    assert session.cost == Decimal("3")  # 1M × $2 + 100K × $10
    assert RepricingJob.objects.get().workspace is None  # every workspace


def _admin_price(admin_client, **fields):
    data = {"model_pattern": "claude-sonnet-4-5*", "input_per_m": "2", "output_per_m": "10",
            "effective_from_0": "2026-01-01", "effective_from_1": "00:00:00", "note": ""} | fields  # fmt: skip
    return admin_client.post(reverse("admin:sessions_app_priceoverride_add"), data)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"effective_from_0": "1970-01-01"}, "between 2000 and 2100"),
        ({"output_per_m": "999999"}, "less than or equal to 100000"),
        ({"model_pattern": "*"}, "Name a model"),
        ({"model_pattern": "CLAUDE-SONNET-4-5*"}, "already has a price from that moment"),
    ],
)
def test_the_admin_shows_a_bad_price_as_a_form_error(admin_client, session, fields, message,
                                                     django_capture_on_commit_callbacks):  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        assert _admin_price(admin_client).status_code == 302
    response = _admin_price(admin_client, **fields)
    assert response.status_code == 200 and message in response.content.decode()
    assert PriceOverride.objects.count() == 1


def test_staff_change_and_remove_any_workspaces_price_in_the_admin(
    admin_client, session, personal_workspace, django_capture_on_commit_callbacks
):
    override = PriceOverride.objects.create(workspace=personal_workspace, model_pattern=MODEL, input_per_m=1,
                                            output_per_m=5, effective_from=datetime(2026, 1, 1, tzinfo=UTC))  # fmt: skip
    url = reverse("admin:sessions_app_priceoverride_change", args=[override.pk])
    data = {"workspace": personal_workspace.pk, "model_pattern": MODEL, "input_per_m": "2", "output_per_m": "10",
            "effective_from_0": "2026-01-01", "effective_from_1": "00:00:00", "note": "contract"}  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_client.post(url, data).status_code == 302
    session.refresh_from_db()
    assert session.cost == Decimal("3")  # the staff member isn't in the workspace, and may
    delete = reverse("admin:sessions_app_priceoverride_delete", args=[override.pk])
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_client.post(delete, {"post": "yes"}).status_code == 302
    assert not PriceOverride.objects.exists()
    session.refresh_from_db()
    assert session.cost == BOOK


def test_a_workspace_time_zone_changed_in_the_admin_rebuilds_its_rollups(
    admin_client, user, personal_workspace, django_capture_on_commit_callbacks
):
    SessionFactory(owner=user, workspace=personal_workspace, prompt_tokens=5,
                   created_at=datetime(2026, 3, 1, 23, 30, tzinfo=UTC))  # fmt: skip
    url = reverse("admin:accounts_workspace_change", args=[personal_workspace.pk])
    form = {"name": personal_workspace.name, "slug": personal_workspace.slug, "is_personal": "on",
            "created_by": user.pk, "timezone": "Mars/Olympus", "monthly_budget": "",
            "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"}  # fmt: skip
    response = admin_client.post(url, form)
    assert response.status_code == 200 and "Unknown time zone" in response.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, form | {"timezone": "Asia/Tokyo"})
    assert response.status_code == 302, response.content.decode()[:3000]
    assert rollups.check(personal_workspace.pk) == 0
    assert rollups.stored(personal_workspace.pk).popitem()[0][1].isoformat() == "2026-03-02"


def test_reprice_command_resumes_where_it_stopped(user, personal_workspace, monkeypatch, capsys):
    for n in range(7):
        SessionFactory(owner=user, workspace=personal_workspace, model=MODEL, prompt_tokens=1000 + n)
    Session.objects.update(cost_source="pending")  # as stored before the cost engine existed
    rollups.rebuild(personal_workspace.pk)
    calls = {"n": 0}
    real = services.sessions_price

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("worker killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(services, "sessions_price", flaky)
    with pytest.raises(CommandError, match="resume"):
        call_command("reprice", pending=True, batch=2)
    job = RepricingJob.objects.get()
    assert (job.status, job.processed, job.total) == (JobStatus.FAILED, 4, 7)
    assert Session.objects.filter(cost_source="pending").count() == 3
    monkeypatch.setattr(services, "sessions_price", real)
    call_command("reprice", pending=True, batch=2)
    job.refresh_from_db()
    assert (job.status, job.processed) == (JobStatus.DONE, 7)
    assert not Session.objects.filter(cost_source="pending").exists()
    assert "Resuming from session id" in capsys.readouterr().err
    assert rollups.check(personal_workspace.pk) == 0


def test_upgrade_prices_sessions_stored_before_the_cost_engine(user, personal_workspace):
    """After the migration: sessions with the plugin's cost as `cost`, `pending`, and no rollups.
    `manage.py reprice --pending` (run by `make run` and the release step) builds the rollups and
    prices them; run again, it has nothing to do."""
    from sessions_app.models import UsageRollup

    for _ in range(3):
        SessionFactory(owner=user, workspace=personal_workspace, source=Source.OPENCODE, model=MODEL,
                       prompt_tokens=1_000_000, cost=Decimal("9"))  # fmt: skip
    Session.objects.update(cost=Decimal("9"), cost_source="pending", computed_cost=None, usage_input_tokens=0)
    UsageRollup.objects.all().delete()
    call_command("reprice", pending=True)
    assert set(Session.objects.values_list("cost", "cost_source")) == {(Decimal("3"), "computed")}
    assert rollups.check(personal_workspace.pk) == 0
    assert UsageRollup.objects.get().sessions == 3
    call_command("reprice", pending=True)
    assert RepricingJob.objects.count() == 1
