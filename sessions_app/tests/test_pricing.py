"""The cost engine on real-format usage from each agent.

Each test sends what a plugin really sends (or what the agent really records, mapped the way the
plugin maps it), then checks the server's computed cost three ways where it can: against
genai-prices called independently here (its own `Usage`, in its OpenAI-style convention where
`input_tokens` includes cached tokens), against figures worked out by hand, and against the peers'
known mistakes (1-hour writes at the 5-minute rate, Codex cached input billed twice).
"""

import json
from datetime import UTC, datetime
from decimal import Decimal

import genai_prices
import pytest

from accounts.models import Workspace
from sessions_app import pricing
from sessions_app.models import Message, PriceOverride, Session
from sessions_app.pricing import PriceBook, SessionFacts, TokenUsage, price_session

pytestmark = pytest.mark.django_db

WHEN = datetime(2026, 6, 1, 12, tzinfo=UTC)
WHEN_MS = int(WHEN.timestamp() * 1000)


def book_price(
    model, *, provider=None, when=WHEN, uncached=0, output=0, cache_read=0, write_5m=0, write_1h=0, reasoning=0
):
    """genai-prices' own answer, in its convention: input_tokens counts every input token."""
    usage = genai_prices.Usage(
        input_tokens=uncached + cache_read + write_5m + write_1h,
        cache_read_tokens=cache_read,
        cache_write_tokens=write_5m + write_1h,
        cache_write_1h_tokens=write_1h,
        output_tokens=output,
        output_reasoning_tokens=reasoning,
    )
    price = genai_prices.calc_price(usage, model, provider_id=provider, genai_request_timestamp=when)
    return price.total_price.quantize(Decimal("0.00000001"))


def sync(client, path, body):
    response = client.post(path, data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def stored(external_id) -> Session:
    return Session.objects.get(external_id=external_id)


# --- by hand ------------------------------------------------------------------------------------


def test_sonnet_4_5_by_hand_5_minute_and_1_hour_cache_writes():
    """1,000 fresh input + 5,000 cache reads + 3,000 cache writes + 200 output on Sonnet 4.5
    ($3 in, $15 out, $0.30 reads, $3.75 5-minute writes, $6 1-hour writes per million)."""
    book = PriceBook()
    rates = book.rates("claude-sonnet-4-5", "anthropic", WHEN)
    five = TokenUsage(input=1000, output=200, cache_read=5000, cache_write_5m=3000)
    hour = TokenUsage(input=1000, output=200, cache_read=5000, cache_write_1h=3000)
    assert rates.cost(five) == Decimal("0.01875")  # 0.003 + 0.003 + 0.0015 + 0.01125
    assert rates.cost(hour) == Decimal("0.0255")  # 0.003 + 0.003 + 0.0015 + 0.018
    # the peers' bug: 1-hour writes priced at the 5-minute rate undercount this by 26%
    assert float(rates.cost(five) / rates.cost(hour)) == pytest.approx(0.735, abs=0.001)


def test_gpt_5_by_hand_cached_input_inside_input():
    """Codex on GPT-5 ($1.25 in, $0.125 cached, $10 out per million): 10,000 input of which 8,000
    cached, 500 output of which 200 reasoning."""
    facts = SessionFacts(
        source="codex-cli",
        model="gpt-5-codex",
        provider="openai",
        created_at=WHEN,
        prompt_tokens=10_000,
        completion_tokens=500,
        cache_read_tokens=8_000,
        reasoning_tokens=200,
    )
    priced = price_session(facts, PriceBook())
    assert priced.usage == TokenUsage(input=2_000, output=500, cache_read=8_000, reasoning=200)
    assert priced.computed_cost == Decimal("0.0085")  # 2000 × 1.25 + 8000 × 0.125 + 500 × 10, per million
    # adding the cached tokens on top of the input (the peers' bug) would bill 0.0185 + 0.001
    assert priced.computed_cost < Decimal("0.0185")


# --- each agent, real-format usage ----------------------------------------------------------------


def test_claude_code_our_plugin_1h_writes_and_subagents(sync_client):
    """What plugins/claude-code-sync sends for a session whose main agent (Opus 4.5) wrote 1-hour
    caches and whose Explore subagent ran on Haiku 4.5 (see tests/test_plugin_claude_code.py for
    the same from a real transcript)."""
    main = {"inputTokens": 120, "outputTokens": 4_200, "cacheReadTokens": 380_000, "cacheWriteTokens": 42_000,
            "cacheWrite5mTokens": 2_000, "cacheWrite1hTokens": 40_000}  # fmt: skip
    sub = {"inputTokens": 3_000, "outputTokens": 900, "cacheReadTokens": 50_000, "cacheWriteTokens": 12_000,
           "cacheWrite5mTokens": 12_000, "cacheWrite1hTokens": 0}  # fmt: skip
    sync(
        sync_client,
        "/sync/session",
        {
            "externalId": "cc-1",
            "source": "claude-code",
            "model": "claude-opus-4-5-20251101",
            "provider": "anthropic",
            "createdAt": WHEN_MS,
            "promptTokens": 3_120,
            "completionTokens": 5_100,
            "cacheReadTokens": 430_000,
            "cacheCreationTokens": 54_000,
            "cacheWrite5mTokens": 14_000,
            "cacheWrite1hTokens": 40_000,
            "cost": 1.23,
            "modelUsage": [
                {"model": "claude-opus-4-5-20251101", "subagent": False, **main},
                {"model": "claude-haiku-4-5-20251001", "subagent": True, **sub},
            ],
        },
    )
    session = stored("cc-1")
    opus = book_price("claude-opus-4-5", provider="anthropic", uncached=120, output=4_200, cache_read=380_000,
                      write_5m=2_000, write_1h=40_000)  # fmt: skip
    haiku = book_price("claude-haiku-4-5", provider="anthropic", uncached=3_000, output=900, cache_read=50_000,
                       write_5m=12_000)  # fmt: skip
    assert session.computed_cost == opus + haiku
    assert (session.cost, session.cost_source, session.reported_cost) == (opus + haiku, "computed", Decimal("1.23"))
    # shown apart: the subagent's usage and cost, counted once in the totals
    assert session.subagent_cost == haiku
    assert session.subagent_tokens == 3_000 + 900 + 50_000 + 12_000
    assert (session.usage_input_tokens, session.usage_cache_read_tokens) == (3_120, 430_000)
    assert (session.usage_cache_write_5m_tokens, session.usage_cache_write_1h_tokens) == (14_000, 40_000)
    # by hand, Opus 4.5 at $5 / $25, reads $0.50, 5m writes $6.25, 1h writes $10 per million
    assert opus == Decimal(120 * 5 + 4_200 * 25 + 380_000 * 0.5 + 2_000 * 6.25 + 40_000 * 10) / 1_000_000
    assert "claude-opus-4-5" in session.price_model and "claude-haiku-4-5" in session.price_model


def test_claude_code_without_the_1h_split_says_it_priced_at_the_5_minute_rate(sync_client):
    sync(sync_client, "/sync/session", {"externalId": "cc-old", "source": "claude-code", "createdAt": WHEN_MS,
         "model": "claude-sonnet-4-5", "promptTokens": 10, "completionTokens": 20, "cacheReadTokens": 1_000,
         "cacheCreationTokens": 500})  # fmt: skip
    session = stored("cc-old")
    assert session.cost_source == "computed"
    assert session.computed_cost == book_price(
        "claude-sonnet-4-5", uncached=10, output=20, cache_read=1_000, write_5m=500
    )
    assert "5-minute rate" in session.cost_note


def test_upstream_claude_code_folded_cache_falls_back_to_its_reported_cost(sync_client):
    """Upstream claude-code-sync: promptTokens = input + cache reads + cache writes, no cache
    fields. Priced as fresh input it would overcount ~8x here; the server says it can't split it."""
    body = {"externalId": "up-1", "source": "claude-code", "model": "claude-sonnet-4-20250514", "promptTokens": 12560,
            "completionTokens": 185, "cost": 0.01098, "messageCount": 3, "toolCallCount": 1}  # fmt: skip
    sync(sync_client, "/sync/session", body)
    session = stored("up-1")
    assert (session.computed_cost, session.cost, session.cost_source) == (None, Decimal("0.01098"), "reported")
    assert "can't price" in session.cost_note


def test_upstream_claude_code_zero_cost_for_an_unknown_model_is_unknown_not_free(sync_client):
    """Its price table lacks e.g. claude-sonnet-4-5 and then sends cost 0 (sync-plugins.md §3.1)."""
    body = {"externalId": "up-2", "source": "claude-code", "model": "claude-sonnet-4-5-20250929",
            "promptTokens": 9_000, "completionTokens": 300, "cost": 0}  # fmt: skip
    sync(sync_client, "/sync/session", body)
    session = stored("up-2")
    assert (session.cost, session.cost_source) == (None, "unpriced")
    assert "$0" in session.cost_note


def test_codex_token_count_event_cached_input_counted_once(sync_client):
    """A real Codex rollout line, sent the way a plugin that keeps the cached count sends it."""
    event = {
        "type": "event_msg",
        "payload": {
            "type": "token_count",
            "info": {
                "total_token_usage": {
                    "input_tokens": 1_283_764,
                    "cached_input_tokens": 1_192_448,
                    "output_tokens": 14_933,
                    "reasoning_output_tokens": 9_152,
                    "total_tokens": 1_298_697,
                }
            },
        },
    }
    total = event["payload"]["info"]["total_token_usage"]
    sync(
        sync_client,
        "/sync/session",
        {
            "externalId": "codex-1",
            "source": "codex-cli",
            "model": "gpt-5-codex",
            "createdAt": WHEN_MS,
            "promptTokens": total["input_tokens"],
            "completionTokens": total["output_tokens"],
            "cacheReadTokens": total["cached_input_tokens"],
            "reasoningTokens": total["reasoning_output_tokens"],
        },
    )
    session = stored("codex-1")
    expected = book_price("gpt-5", uncached=1_283_764 - 1_192_448, output=14_933, cache_read=1_192_448, reasoning=9_152)
    assert session.computed_cost == expected
    # by hand: 91,316 × $1.25 + 1,192,448 × $0.125 + 14,933 × $10, per million
    assert expected == Decimal("0.114145") + Decimal("0.149056") + Decimal("0.14933") == Decimal("0.412531")
    assert session.usage_input_tokens == 91_316  # the cached part is not counted twice
    # adding cached on top (agentsview #362) would have billed 2.7x this
    double = book_price("gpt-5", uncached=1_283_764, output=14_933, cache_read=1_192_448)
    assert double / expected > Decimal("2.7")


def test_codex_sync_without_the_cached_count_is_not_priced_as_fresh_input(sync_client):
    """codex-sync sends input_tokens alone: most of it was cached, and pricing it all as fresh
    input would overcount several times. The plugin's cost is shown, with the reason."""
    body = {"externalId": "codex-2", "source": "codex-cli", "model": "gpt-5-codex", "promptTokens": 1_283_764,
            "completionTokens": 14_933, "cost": 0.41}  # fmt: skip
    sync(sync_client, "/sync/session", body)
    session = stored("codex-2")
    assert (session.cost_source, session.cost, session.computed_cost) == ("reported", Decimal("0.41"), None)


OPENCODE_MESSAGE = {  # message/<sessionID>/<messageID>.json in OpenCode's storage
    "id": "msg_a1",
    "sessionID": "ses_oc1",
    "role": "assistant",
    "time": {"created": WHEN_MS, "completed": WHEN_MS + 8_000},
    "modelID": "claude-sonnet-4-5-20250929",
    "providerID": "anthropic",
    "cost": 0.0571,
    "tokens": {"input": 1_200, "output": 800, "reasoning": 400, "cache": {"read": 90_000, "write": 6_000}},
}


def test_opencode_our_plugin_output_plus_reasoning(sync_client):
    """OpenCode keeps reasoning apart from output; plugins/opencode-sync sends both, as
    completionTokens (output + reasoning) and reasoningTokens."""
    t = OPENCODE_MESSAGE["tokens"]
    body = {
        "externalId": "ses_oc1",
        "source": "opencode",
        "model": OPENCODE_MESSAGE["modelID"],
        "provider": OPENCODE_MESSAGE["providerID"],
        "createdAt": WHEN_MS,
        "promptTokens": t["input"],
        "completionTokens": t["output"] + t["reasoning"],
        "reasoningTokens": t["reasoning"],
        "cacheReadTokens": t["cache"]["read"],
        "cacheCreationTokens": t["cache"]["write"],
        "cost": OPENCODE_MESSAGE["cost"],
    }
    sync(sync_client, "/sync/session", body)
    session = stored("ses_oc1")
    expected = book_price("claude-sonnet-4-5", provider="anthropic", uncached=1_200, output=1_200, cache_read=90_000,
                          write_5m=6_000, reasoning=400)  # fmt: skip
    assert session.computed_cost == expected == Decimal("0.0711")  # by hand: 0.0036 + 0.018 + 0.027 + 0.0225
    assert session.usage_reasoning_tokens == 400


def test_opencode_upstream_plugin_fixture(client, sync_key):
    from tests.test_plugin_fixtures import replay

    replay(client, "opencode-sync.jsonl", sync_key)
    session = stored("ses_abc123")
    assert session.computed_cost == book_price("claude-sonnet-4-20250514", provider="anthropic", uncached=1000, output=200,
                                               when=session.created_at)  # fmt: skip


def test_droid_reports_no_cost_the_server_prices_it(client, sync_key):
    from tests.test_plugin_fixtures import replay

    replay(client, "droid-sync.jsonl", sync_key)
    session = stored("a1b2c3d4-0000-4000-8000-00000000d001")
    assert session.reported_cost is None
    assert session.cost == book_price("claude-opus-4-5-20251101", uncached=4200, output=350, when=session.created_at)


def test_pi_display_name_model_and_per_message_cost(client, sync_key):
    from tests.test_plugin_fixtures import replay

    replay(client, "pi-client.jsonl", sync_key)
    session = stored("pi-7c1d2e3f")
    assert session.cost == book_price("claude-sonnet-4-5", uncached=900, output=120, when=session.created_at)
    message = Message.objects.get(external_id="pi-7c1d2e3f-assistant-2")
    cost = pricing.price_message(
        source="pi",
        model=message.model,
        provider=session.provider,
        when=message.created_at,
        prompt=message.prompt_tokens,
        completion=message.completion_tokens,
        book=PriceBook(),
    )
    assert cost == book_price("claude-sonnet-4-5", uncached=900, output=120, when=message.created_at)


def test_cursor_reports_nothing_and_the_cost_stays_unknown(sync_client):
    sync(sync_client, "/sync/session", {"externalId": "cur-1", "source": "cursor", "title": "Edit"})
    session = stored("cur-1")
    assert (session.cost, session.cost_source) == (None, "none")


# --- the price book's edges ---------------------------------------------------------------------------


def test_historic_prices_follow_the_session_start():
    """o3 cost $10 / $40 per million until 2025-06-10 and $2 / $8 after."""
    book = PriceBook()
    usage = TokenUsage(input=1_000_000, output=1_000_000)
    before = book.rates("o3", "openai", datetime(2025, 5, 1, tzinfo=UTC)).cost(usage)
    after = book.rates("o3", "openai", datetime(2025, 7, 1, tzinfo=UTC)).cost(usage)
    assert (before, after) == (Decimal(50), Decimal(10))


def test_model_spellings_the_plugins_use():
    assert pricing.model_candidates("Claude Sonnet 4.5")[-1] == "claude-sonnet-4.5"
    for spelling in (
        "claude-sonnet-4-5-20250929",
        "Claude Sonnet 4.5",
        "anthropic/claude-sonnet-4.5",
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    ):
        found = pricing.book_model(spelling, None)
        assert found is not None and found[1].id == "claude-sonnet-4-5", spelling
    assert pricing.book_model("claude-sonnet-4-5", "opencode")[1].id == "claude-sonnet-4-5"  # unknown provider
    assert pricing.book_model("my-finetune-7b", None) is None


def test_unknown_model_is_unpriced_with_the_reason_never_zero(sync_client):
    sync(sync_client, "/sync/session", {"externalId": "x-1", "source": "opencode", "model": "my-finetune-7b",
         "promptTokens": 100, "completionTokens": 50})  # fmt: skip
    session = stored("x-1")
    assert (session.cost, session.cost_source) == (None, "unpriced")
    assert "my-finetune-7b" in session.cost_note and "override" in session.cost_note


def test_a_session_with_one_unpriced_model_is_not_priced_in_part():
    facts = SessionFacts(
        source="claude-code",
        model="claude-sonnet-4-5",
        provider="anthropic",
        created_at=WHEN,
        reported_cost=Decimal("0.5"),
        model_usage=[
            {"model": "claude-sonnet-4-5", "inputTokens": 10, "outputTokens": 10},
            {"model": "mystery-model", "inputTokens": 10, "outputTokens": 10, "subagent": True},
        ],
    )
    priced = price_session(facts, PriceBook())
    assert (priced.computed_cost, priced.cost, priced.cost_source) == (None, Decimal("0.5"), "reported")
    assert "mystery-model" in priced.cost_note


def test_an_implausible_total_is_not_shown_as_a_cost():
    """Token counts the wire accepts (each under 10^12) can still price to billions on the most
    expensive model: a session at $1M or more is a data error, so the session says so instead of showing it."""
    facts = SessionFacts(source="pi", model="claude-opus-4-1", provider="anthropic", created_at=WHEN,
                         prompt_tokens=10**12 - 1, completion_tokens=10**12 - 1)  # fmt: skip
    priced = price_session(facts, PriceBook())
    assert priced.computed_cost is None and priced.cost is None
    assert priced.cost_note == pricing.NOTE_IMPLAUSIBLE


def test_a_folded_claude_code_message_has_no_price_of_its_own():
    """Upstream claude-code-sync folds cache tokens into a message's prompt tokens too: pricing
    them all as fresh input would overcount ~10x, so the message shows no cost."""
    book = PriceBook()
    kwargs = {"source": "claude-code", "model": "claude-sonnet-4-5", "provider": "anthropic", "when": WHEN,
              "completion": 100, "book": book}  # fmt: skip
    assert pricing.price_message(prompt=50_000, **kwargs) is None
    # our plugin sends Anthropic's split: prompt tokens without the cache read
    split = pricing.price_message(prompt=5_000, cache_read=45_000, **kwargs)
    assert split == book_price("claude-sonnet-4-5", uncached=5_000, cache_read=45_000, output=100)


def test_message_prices_apply_tiers_per_request_session_totals_the_base_rate():
    """Gemini 2.5 Pro charges more for a request whose prompt passes 200K tokens."""
    book = PriceBook()
    small = pricing.price_message(source="opencode", model="gemini-2.5-pro", provider="google", when=WHEN,
                                  prompt=100_000, completion=1_000, book=book)  # fmt: skip
    large = pricing.price_message(source="opencode", model="gemini-2.5-pro", provider="google", when=WHEN,
                                  prompt=300_000, completion=1_000, book=book)  # fmt: skip
    assert small == book_price("gemini-2.5-pro", provider="google", uncached=100_000, output=1_000)
    assert large == book_price("gemini-2.5-pro", provider="google", uncached=300_000, output=1_000)
    assert large / 3 > small  # the tier, not just three times the tokens


# --- overrides ---------------------------------------------------------------------------------------


def override(workspace, pattern, when, input_per_m, output_per_m, **extra):
    return PriceOverride.objects.create(
        workspace=workspace,
        model_pattern=pattern,
        effective_from=when,
        input_per_m=input_per_m,
        output_per_m=output_per_m,
        **extra,
    )


def test_overrides_workspace_beats_instance_latest_in_force_wins(personal_workspace):
    from sessions_app.services import price_book

    other = Workspace.objects.create(name="other", slug="other-ws")
    override(None, "claude-sonnet-4-5*", datetime(2026, 1, 1, tzinfo=UTC), 2, 10)
    override(personal_workspace, "claude-sonnet-4-5*", datetime(2026, 3, 1, tzinfo=UTC), 1, 5)
    override(personal_workspace, "claude-sonnet-4-5-20250929", datetime(2026, 3, 1, tzinfo=UTC), Decimal("1.5"), 6)
    override(personal_workspace, "llama-local", datetime(2026, 1, 1, tzinfo=UTC), 0, 0)
    usage = TokenUsage(input=1_000_000, output=1_000_000, cache_read=1_000_000)
    mine, theirs = price_book(personal_workspace.pk), price_book(other.pk)
    feb, apr = datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)
    # before the workspace's own override: the instance-wide one (cache reads at the input price)
    assert mine.rates("claude-sonnet-4-5-20250929", "anthropic", feb).cost(usage) == Decimal(14)
    # from March: the workspace's, and its exact name beats its own pattern
    assert mine.rates("claude-sonnet-4-5-20250929", "anthropic", apr).cost(usage) == Decimal("9")
    assert mine.rates("claude-sonnet-4-5", "anthropic", apr).cost(usage) == Decimal(7)
    assert theirs.rates("claude-sonnet-4-5", "anthropic", apr).cost(usage) == Decimal(14)
    # a self-hosted model at $0 is a real $0, and computed
    assert mine.rates("llama-local", None, apr).cost(usage) == 0
    assert theirs.rates("llama-local", None, apr) is None
    # before any override, the price book
    assert mine.rates("claude-sonnet-4-5", "anthropic", datetime(2025, 12, 1, tzinfo=UTC)).label.startswith(
        "claude-sonnet-4-5"
    )


def test_the_price_book_is_the_bundled_one_and_nothing_is_fetched(monkeypatch):
    """genai-prices can update its prices from the internet (UpdatePrices); the server never
    starts that: prices come from the data in the wheel, with no network at all."""
    import httpx2
    from genai_prices import data_snapshot

    def no_network(*args, **kwargs):
        raise AssertionError("the price book tried to reach the network")

    monkeypatch.setattr(httpx2.Client, "send", no_network)
    pricing.book_model.cache_clear()
    rates = PriceBook().rates("claude-opus-4-5", "anthropic", WHEN)
    assert rates is not None and data_snapshot._custom_snapshot is None
    assert data_snapshot.get_snapshot().from_auto_update is False
