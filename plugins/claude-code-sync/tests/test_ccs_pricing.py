"""The price table: family matching and cache-aware cost."""

import pytest
from claude_code_sync import pricing


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("claude-opus-4-5-20251101", "claude-opus-4-5"),
        ("claude-opus-4-6", "claude-opus-4-6"),
        ("claude-opus-4-20250514", "claude-opus-4"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-3-opus-20240229", "claude-3-opus"),
        ("claude-3-haiku-20240307", "claude-3-haiku"),
        ("us.anthropic.claude-opus-4-1-20250805-v1:0", "claude-opus-4-1"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5[1m]", "claude-sonnet-4-5"),
    ],
)
def test_model_ids_match_their_family(model, family):
    assert pricing.family_of(model) == family


@pytest.mark.parametrize(
    "model", [None, "", "<synthetic>", "gpt-4o", "claude-opus-4-9", "claude-haiku-5-5", "claude-opus-4-5x"]
)
def test_unknown_models_have_no_price(model):
    assert pricing.family_of(model) is None
    assert (
        pricing.cost(model, input_tokens=1, output_tokens=1, cache_read=0, cache_write_5m=0, cache_write_1h=0) is None
    )


def test_cost_uses_cache_multipliers():
    # Opus 4.5: $5 in, $25 out; 5m writes 1.25x, 1h writes 2x, reads 0.1x
    cost = pricing.cost(
        "claude-opus-4-5-20251101",
        input_tokens=1_000_000,
        output_tokens=1_000_000,
        cache_read=1_000_000,
        cache_write_5m=1_000_000,
        cache_write_1h=1_000_000,
    )
    assert cost == pytest.approx(5 + 25 + 0.5 + 6.25 + 10)


@pytest.mark.parametrize(
    ("model", "input_rate", "output_rate"),
    [
        ("claude-opus-4-1", 15, 75),
        ("claude-sonnet-4-5", 3, 15),
        ("claude-haiku-4-5", 1, 5),
        ("claude-3-5-haiku", 0.8, 4),
        ("claude-3-haiku", 0.25, 1.25),
        ("claude-opus-4-6", 5, 25),
    ],
)
def test_base_rates(model, input_rate, output_rate):
    kwargs = {"cache_read": 0, "cache_write_5m": 0, "cache_write_1h": 0}
    # 100K tokens: under every long-context threshold
    assert pricing.cost(model, input_tokens=100_000, output_tokens=0, **kwargs) == pytest.approx(input_rate / 10)
    assert pricing.cost(model, input_tokens=0, output_tokens=100_000, **kwargs) == pytest.approx(output_rate / 10)


def test_sonnet_4_5_long_context_requests_cost_more():
    no_writes = {"cache_write_5m": 0, "cache_write_1h": 0}
    short = pricing.cost("claude-sonnet-4-5", input_tokens=1000, output_tokens=1000, cache_read=199_000, **no_writes)
    long = pricing.cost("claude-sonnet-4-5", input_tokens=1000, output_tokens=1000, cache_read=200_000, **no_writes)
    assert short == pytest.approx((1000 * 3 + 1000 * 15 + 199_000 * 0.3) / 1e6)
    assert long == pytest.approx((1000 * 6 + 1000 * 22.5 + 200_000 * 0.6) / 1e6)
