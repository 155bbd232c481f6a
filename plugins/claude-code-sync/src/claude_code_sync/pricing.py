"""USD cost of Anthropic usage, from a price table that knows prompt-cache pricing.

Rates are USD per million tokens: (input, output, 5-minute cache write, 1-hour cache write,
cache read), from Anthropic's pricing page (platform.claude.com/docs/en/about-claude/pricing).
Cache writes cost 1.25x input (5 minutes) or 2x (1 hour), cache reads 0.1x, except where the
page lists other figures (Haiku 3, Opus 5.5, Fable 5.1). Models whose price depends on more than
the model id (Haiku 5.5's prompt-length tiers, Sonnet 5.5's dated cache-read change) are left
out on purpose: an unknown model gets no cost at all, never a wrong one.
"""

import re


def _standard(input_rate: float, output_rate: float) -> tuple[float, float, float, float, float]:
    return (input_rate, output_rate, input_rate * 1.25, input_rate * 2, input_rate * 0.1)


# Model family -> rates. Matched against the model id by prefix; see rates_for().
PRICES: dict[str, tuple[float, float, float, float, float]] = {
    "claude-fable-5-1": (10, 50, 12.5, 20, 0.25),
    "claude-mythos-5-1": (10, 50, 12.5, 20, 0.25),
    "claude-fable-5": _standard(10, 50),
    "claude-mythos-5": _standard(10, 50),
    "claude-opus-5-5": (4, 20, 5, 8, 0.2),
    "claude-opus-5": _standard(5, 25),
    "claude-opus-4-8": _standard(5, 25),
    "claude-opus-4-7": _standard(5, 25),
    "claude-opus-4-6": _standard(5, 25),
    "claude-opus-4-5": _standard(5, 25),
    "claude-opus-4-1": _standard(15, 75),
    "claude-opus-4-0": _standard(15, 75),
    "claude-opus-4": _standard(15, 75),
    "claude-sonnet-5": _standard(2, 10),
    "claude-sonnet-4-6": _standard(3, 15),
    "claude-sonnet-4-5": _standard(3, 15),
    "claude-sonnet-4-0": _standard(3, 15),
    "claude-sonnet-4": _standard(3, 15),
    "claude-3-7-sonnet": _standard(3, 15),
    "claude-3-5-sonnet": _standard(3, 15),
    "claude-haiku-4-5": _standard(1, 5),
    "claude-3-5-haiku": _standard(0.8, 4),
    "claude-3-opus": _standard(15, 75),
    "claude-3-haiku": (0.25, 1.25, 0.3, 0.5, 0.03),
}
# Sonnet 4 / 4.5 with the 1M-context beta: a request whose prompt (input + cache) is over 200K
# tokens pays these rates on all of its tokens.
LONG_CONTEXT = {
    family: (200_000, _standard(6, 22.5)) for family in ("claude-sonnet-4-5", "claude-sonnet-4-0", "claude-sonnet-4")
}
# What may follow the family name: nothing, a date (-20250514, @20250514), -latest, a version
# suffix (-v1:0 on Bedrock) or a context tag ([1m]).
_SUFFIX = re.compile(r"(?:[-@]\d{8})?(?:-latest)?(?:-v\d+(?::\d+)?)?(?:\[[^\]]*\])?$")


def family_of(model: str | None) -> str | None:
    """The PRICES key for a model id such as `claude-sonnet-4-5-20250929`,
    `us.anthropic.claude-opus-4-1-20250805-v1:0` or `claude-opus-4-6`; None when unknown."""
    if not model:
        return None
    name = model.strip().lower()
    start = name.find("claude-")
    if start < 0:
        return None
    name = name[start:]
    for family in PRICES:
        if name.startswith(family) and _SUFFIX.fullmatch(name[len(family) :]):
            return family
    return None


def cost(
    model: str | None,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_read: int,
    cache_write_5m: int,
    cache_write_1h: int,
) -> float | None:
    """USD for one message's usage, or None when the model has no known price."""
    family = family_of(model)
    if family is None:
        return None
    rates = PRICES[family]
    threshold, long_rates = LONG_CONTEXT.get(family, (None, None))
    if threshold is not None and input_tokens + cache_read + cache_write_5m + cache_write_1h > threshold:
        rates = long_rates
    input_rate, output_rate, write_5m, write_1h, read = rates
    total = (
        input_tokens * input_rate
        + output_tokens * output_rate
        + cache_write_5m * write_5m
        + cache_write_1h * write_1h
        + cache_read * read
    )
    return total / 1_000_000
