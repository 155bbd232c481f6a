"""The cost engine: what a session or a message cost, computed on the server from its tokens.

Three steps, each written once here:

1. **Normalise** what a plugin sent into one convention, `TokenUsage`: input *without* cache
   (Anthropic style), cache reads, cache writes at the 5-minute and the 1-hour rate, and output
   *with* reasoning. Agents count differently on the wire; `CONVENTIONS` says how each one does,
   and only the rules there differ between them.
2. **Look up rates**: a price override of the workspace, else an instance-wide one, else the price
   book (`genai-prices`, whose data ships in its wheel; its remote updater is never started).
   Price-book rates come from genai-prices' own `calc_price`, evaluated on one token of each kind,
   so the arithmetic is exactly the book's. Prices are the ones in force when the session started
   (the book keeps historic prices).
3. **Price**: tokens × rates. A session's figures are totals over many requests, so they are
   priced at the base rate; tiered prices (more per token once a *single request* passes e.g.
   200K input tokens) apply to messages, which are one request each.

Nothing here is silently $0: a model that neither an override nor the book knows leaves the
computed cost empty with the reason in `cost_note`, and the session falls back to the cost the
plugin reported, when it reported one it is right to trust.
"""

import functools
import re
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import genai_prices
from genai_prices import data_snapshot

COST_PLACES = Decimal("0.00000001")  # the 8 decimals sessions store
MAX_COST = Decimal(10) ** 6  # a session priced at $1M or more is a data error, not a cost
PER_MILLION = Decimal(1_000_000)


class CostSource:
    """Where a session's shown cost comes from (Session.cost_source)."""

    COMPUTED = "computed"  # priced by the server (price book or an override)
    REPORTED = "reported"  # the server could not price it: the plugin's figure is shown
    UNPRICED = "unpriced"  # tokens, but no price and no trustworthy reported cost: unknown
    NO_USAGE = "none"  # no tokens and no cost reported (e.g. Cursor): unknown
    PENDING = "pending"  # stored before the cost engine existed; `manage.py reprice` prices it

    CHOICES = [
        (COMPUTED, "Computed"),
        (REPORTED, "Reported by the plugin"),
        (UNPRICED, "Unknown (model not priced)"),
        (NO_USAGE, "Unknown (no usage reported)"),
        (PENDING, "Not priced yet"),
    ]


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Tokens in one convention: `input` excludes cache reads and writes; `output` includes
    reasoning (`reasoning` says how much of it was)."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    reasoning: int = 0

    @property
    def cache_write(self) -> int:
        return self.cache_write_5m + self.cache_write_1h

    @property
    def total(self) -> int:
        """Every token processed: input, cache reads and writes, and output."""
        return self.input + self.cache_read + self.cache_write + self.output

    @property
    def prompt_total(self) -> int:
        """The whole prompt of a request (what tiered prices look at)."""
        return self.input + self.cache_read + self.cache_write

    def __add__(self, other: "TokenUsage") -> "TokenUsage":
        return TokenUsage(
            self.input + other.input,
            self.output + other.output,
            self.cache_read + other.cache_read,
            self.cache_write_5m + other.cache_write_5m,
            self.cache_write_1h + other.cache_write_1h,
            self.reasoning + other.reasoning,
        )

    def __bool__(self) -> bool:
        return bool(self.total)


# --- 1. each agent's convention ------------------------------------------------------------------


@dataclass(frozen=True)
class Convention:
    """How one agent's plugin counts tokens on the wire.

    Everywhere: `completionTokens` includes reasoning (`reasoningTokens` is the part of it that
    was), `cacheCreationTokens` counts every cache write and `cacheWrite1hTokens` /
    `cacheWrite5mTokens` split it by lifetime when the agent says.
    """

    # promptTokens counts the cached input too (OpenAI style): cache reads are subtracted from it.
    input_includes_cache_read: bool = False
    # Tokens with no cache fields and no per-model rows mean the cached part is hidden inside
    # promptTokens, unsplittable: pricing it all as fresh input would overcount several times.
    folds_cache: bool = False
    # A reported cost of 0 for a session with tokens means "the plugin had no price for the model".
    zero_cost_means_unknown: bool = False


CONVENTIONS = {
    # Our claude-code-sync sends promptTokens without cache, cacheReadTokens,
    # cacheCreationTokens with its 5m/1h split, and per-model rows (`modelUsage`, subagents
    # flagged). The upstream claude-code-sync (npm) sends promptTokens = input + cache reads +
    # cache writes with no cache fields, and a cost from its own table, which prices every cache
    # write at the 5-minute rate and sends 0 for models missing from that table.
    "claude-code": Convention(folds_cache=True, zero_cost_means_unknown=True),
    # Codex: token_count's input_tokens include cached_input_tokens, output_tokens include
    # reasoning_output_tokens. A plugin that sends cached_input_tokens as cacheReadTokens is
    # priced exactly; codex-sync sends input_tokens alone, which hides the cached part.
    "codex-cli": Convention(input_includes_cache_read=True, folds_cache=True),
    # opencode-sync: OpenCode's tokens.input excludes cache (cache.read / cache.write apart) and
    # tokens.output excludes reasoning; our plugin sends output + reasoning as completionTokens and
    # reasoning as reasoningTokens. The upstream plugin sends output alone: its reasoning is lost.
    "opencode": Convention(),
    # droid-sync: the settings file's inputTokens / outputTokens (cache counted apart and not
    # sent), never a cost.
    "factory-droid": Convention(),
    # pi: pi-ai's usage.input excludes cacheRead / cacheWrite.
    "pi": Convention(),
    # cursor-sync: Cursor exposes no tokens, no cost and no model.
    "cursor-sync": Convention(),
}
DEFAULT_CONVENTION = Convention()


def convention_of(source: str | None) -> Convention:
    return CONVENTIONS.get(source or "", DEFAULT_CONVENTION)


def split_cache_writes(total: int, write_5m: int, write_1h: int) -> tuple[int, int, bool]:
    """(5-minute, 1-hour, split known) of a reported cache write total and its optional split.

    Without a split every write counts at the 5-minute rate (and `split known` is False, so the
    session can say so); a split that doesn't add up is trusted for its 1-hour part."""
    if write_5m + write_1h == 0:
        return total, 0, total == 0
    if total <= 0:
        return write_5m, write_1h, True
    write_1h = min(write_1h, total)
    return total - write_1h, write_1h, True


def normalise(
    convention: Convention,
    *,
    prompt: int,
    completion: int,
    cache_read: int = 0,
    cache_write: int = 0,
    cache_write_5m: int = 0,
    cache_write_1h: int = 0,
    reasoning: int = 0,
) -> TokenUsage:
    """One request's or one session's wire counts -> TokenUsage (see `Convention`)."""
    write_5m, write_1h, _ = split_cache_writes(cache_write, cache_write_5m, cache_write_1h)
    uncached = prompt
    if convention.input_includes_cache_read and cache_read <= prompt:
        uncached = prompt - cache_read
    return TokenUsage(
        input=uncached,
        output=completion,
        cache_read=cache_read,
        cache_write_5m=write_5m,
        cache_write_1h=write_1h,
        reasoning=min(reasoning, completion),
    )


# --- 2. rates -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rates:
    """USD per token of each kind, and what they are (shown next to the cost)."""

    input: Decimal
    output: Decimal
    reasoning: Decimal
    cache_read: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    label: str

    def cost(self, usage: TokenUsage) -> Decimal:
        return (
            usage.input * self.input
            + (usage.output - usage.reasoning) * self.output
            + usage.reasoning * self.reasoning
            + usage.cache_read * self.cache_read
            + usage.cache_write_5m * self.cache_write_5m
            + usage.cache_write_1h * self.cache_write_1h
        )


_BEDROCK_PREFIX = re.compile(r"^(?:[a-z]{2}\.)?(?:anthropic|meta|amazon|mistral|cohere)\.")
_VERSION_SUFFIX = re.compile(r"-v\d+(?::\d+)?$")


def model_candidates(model: str) -> list[str]:
    """Spellings of a model id to try in the price book, most literal first: as sent, without a
    `provider/` prefix or a Bedrock region/vendor prefix and version suffix, and a display name
    made an id ("Claude Sonnet 4.5" -> "claude-sonnet-4.5", as pi sends it)."""
    name = model.strip().lower()
    candidates = [name]
    if "/" in name:
        candidates.append(name.rsplit("/", 1)[1])
    bare = _VERSION_SUFFIX.sub("", _BEDROCK_PREFIX.sub("", candidates[-1]))
    candidates.append(bare)
    if " " in bare:
        candidates.append("-".join(bare.split()))
    return list(dict.fromkeys(c for c in candidates if c))


@functools.lru_cache(maxsize=4096)
def book_model(model: str, provider: str | None):
    """(provider, model) of the price book for a session's model and reported provider, or None.

    A provider the book doesn't know (e.g. "opencode") or that doesn't sell the model is ignored
    and the model alone decides, as genai-prices does when no provider is given."""
    snapshot = data_snapshot.get_snapshot()
    providers = [provider.strip().lower().removesuffix("-oauth"), None] if provider and provider.strip() else [None]
    for candidate in model_candidates(model):
        for provider_id in providers:
            try:
                return snapshot.find_provider_model(candidate, None, provider_id, None)
            except LookupError:
                continue
    return None


def _tier_starts(model_price) -> list[int]:
    starts = set()
    for value in vars(model_price).values():
        for tier in getattr(value, "tiers", ()) or ():
            starts.add(tier.start)
    return sorted(starts)


_RATE_CACHE: dict[tuple[int, int], tuple[object, Rates]] = {}


def _book_rates(provider, model_info, model_price, prompt_total: int) -> Rates:
    """The per-token rates of a price-book entry for requests whose whole prompt is
    `prompt_total` tokens (0: the base tier), from genai-prices' own calc_price."""
    starts = _tier_starts(model_price)
    tier = sum(1 for start in starts if prompt_total > start)
    key = (id(model_price), tier)
    cached = _RATE_CACHE.get(key)
    if cached is not None and cached[0] is model_price:
        return cached[1]
    # n input tokens put calc_price in the same tier (it compares the whole input with each start).
    n = starts[tier - 1] + 1 if tier else 1

    def calc(**usage) -> Decimal:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return model_price.calc_price(genai_prices.Usage(**usage))["total_price"]

    fixed = calc()  # per-request fees (a few models): not a token price, left out here
    base = calc(input_tokens=n) - fixed

    def per_token(**usage) -> Decimal:
        return (calc(**usage) - fixed) / n

    rates = Rates(
        input=base / n,
        output=(calc(input_tokens=n, output_tokens=n) - fixed - base) / n,
        reasoning=(calc(input_tokens=n, output_tokens=n, output_reasoning_tokens=n) - fixed - base) / n,
        cache_read=per_token(input_tokens=n, cache_read_tokens=n),
        cache_write_5m=per_token(input_tokens=n, cache_write_tokens=n),
        cache_write_1h=per_token(input_tokens=n, cache_write_tokens=n, cache_write_1h_tokens=n),
        label=f"{model_info.id} · {provider.id}",
    )
    _RATE_CACHE[key] = (model_price, rates)
    return rates


def book_rates(model: str, provider: str | None, when: datetime, *, prompt_total: int = 0) -> Rates | None:
    found = book_model(model, provider)
    if found is None:
        return None
    book_provider, model_info = found
    return _book_rates(book_provider, model_info, model_info.get_prices(when), prompt_total)


@dataclass(frozen=True)
class Override:
    """A price override (sessions_app.PriceOverride) as the engine uses it."""

    pk: int
    workspace_id: int | None
    pattern: str  # lower case; a trailing "*" matches any ending
    effective_from: datetime
    rates: Rates

    def matches(self, model: str) -> bool:
        model = model.strip().lower()
        if self.pattern.endswith("*"):
            return model.startswith(self.pattern[:-1])
        return model == self.pattern


def override_rates(
    *, pk: int, pattern: str, input_per_m, output_per_m, cache_read_per_m, cache_write_5m_per_m, cache_write_1h_per_m
) -> Rates:
    """Rates of an override given in USD per million tokens. A cache price left empty is the
    input price (no cache discount assumed); reasoning is priced as output."""

    def per_token(value) -> Decimal:
        return Decimal(value) / PER_MILLION

    input_rate = per_token(input_per_m)
    output_rate = per_token(output_per_m)
    return Rates(
        input=input_rate,
        output=output_rate,
        reasoning=output_rate,
        cache_read=input_rate if cache_read_per_m is None else per_token(cache_read_per_m),
        cache_write_5m=input_rate if cache_write_5m_per_m is None else per_token(cache_write_5m_per_m),
        cache_write_1h=input_rate if cache_write_1h_per_m is None else per_token(cache_write_1h_per_m),
        label=f"override #{pk} ({pattern})",
    )


@dataclass
class PriceBook:
    """Rates for one workspace: its overrides, then instance-wide ones, then the price book."""

    overrides: list[Override] = field(default_factory=list)

    def rates(self, model: str | None, provider: str | None, when: datetime, *, prompt_total: int = 0) -> Rates | None:
        if not model or not model.strip():
            return None
        for level in (True, False):  # the workspace's own overrides win over instance-wide ones
            best = None
            for override in self.overrides:
                if (override.workspace_id is not None) != level or override.effective_from > when:
                    continue
                if not override.matches(model):
                    continue
                # the latest in force; at the same date an exact name beats a pattern
                rank = (override.effective_from, not override.pattern.endswith("*"), override.pk)
                if best is None or rank > best[0]:
                    best = (rank, override)
            if best is not None:
                return best[1].rates
        return book_rates(model, provider, when, prompt_total=prompt_total)


# --- 3. pricing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageRow:
    """Tokens of one model within a session (the session itself when no rows were sent)."""

    model: str | None
    provider: str | None
    usage: TokenUsage
    subagent: bool = False


@dataclass(frozen=True)
class SessionFacts:
    """What pricing reads of a session."""

    source: str | None
    model: str | None
    provider: str | None
    created_at: datetime
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    model_usage: list | None = None
    reported_cost: Decimal | None = None


@dataclass(frozen=True)
class PricedSession:
    usage: TokenUsage
    subagent_usage: TokenUsage
    computed_cost: Decimal | None
    subagent_cost: Decimal | None
    cost: Decimal | None
    cost_source: str
    cost_note: str
    price_model: str


def usage_rows(facts: SessionFacts) -> tuple[list[UsageRow], str]:
    """The session's usage per model, and a note when its cache split can't be known."""
    if facts.model_usage:
        rows = [
            UsageRow(
                model=row.get("model") or facts.model,
                provider=row.get("provider") or facts.provider,
                subagent=bool(row.get("subagent")),
                usage=normalise(
                    DEFAULT_CONVENTION,  # per-model rows always count input without cache
                    prompt=row.get("inputTokens", 0),
                    completion=row.get("outputTokens", 0),
                    cache_read=row.get("cacheReadTokens", 0),
                    cache_write=row.get("cacheWriteTokens", 0),
                    cache_write_5m=row.get("cacheWrite5mTokens", 0),
                    cache_write_1h=row.get("cacheWrite1hTokens", 0),
                    reasoning=row.get("reasoningTokens", 0),
                ),
            )
            for row in facts.model_usage
        ]
        return rows, ""
    convention = convention_of(facts.source)
    usage = normalise(
        convention,
        prompt=facts.prompt_tokens,
        completion=facts.completion_tokens,
        cache_read=facts.cache_read_tokens,
        cache_write=facts.cache_write_tokens,
        cache_write_5m=facts.cache_write_5m_tokens,
        cache_write_1h=facts.cache_write_1h_tokens,
        reasoning=facts.reasoning_tokens,
    )
    note = ""
    if convention.folds_cache and usage.input and not (usage.cache_read or usage.cache_write):
        note = NOTE_FOLDED
    elif (
        usage.cache_write
        and not split_cache_writes(facts.cache_write_tokens, facts.cache_write_5m_tokens, facts.cache_write_1h_tokens)[
            2
        ]
    ):
        note = NOTE_TTL_UNKNOWN
    return [UsageRow(model=facts.model, provider=facts.provider, usage=usage)], note


NOTE_FOLDED = (
    "The plugin counts cached tokens inside its prompt tokens without saying how many, so the server can't price them."
)
NOTE_TTL_UNKNOWN = "The plugin didn't say which cache writes lasted 1 hour: all are priced at the 5-minute rate."
NOTE_NO_MODEL = "No model was reported."
NOTE_IMPLAUSIBLE = "The tokens priced come to an implausible amount; the server doesn't show it."
NOTE_ZERO_REPORTED = "The plugin reported $0 for tokens it had no price for."


def note_unknown_model(models: list[str]) -> str:
    return f"Not in the price book: {', '.join(sorted(set(models)))[:200]}. Add a price override to price it."


def _quantize(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(COST_PLACES)


def price_session(facts: SessionFacts, book: PriceBook) -> PricedSession:
    rows, note = usage_rows(facts)
    usage = TokenUsage()
    subagent_usage = TokenUsage()
    for row in rows:
        usage += row.usage
        if row.subagent:
            subagent_usage += row.usage
    when = facts.created_at or datetime.now(UTC)
    computed: Decimal | None = Decimal(0)
    subagent_cost: Decimal | None = Decimal(0)
    labels: list[str] = []
    unknown: list[str] = []
    if note == NOTE_FOLDED:
        computed = None
    else:
        for row in rows:
            if not row.usage:
                continue
            rates = book.rates(row.model, row.provider, when)
            if rates is None:
                unknown.append(row.model or "")
                continue
            amount = rates.cost(row.usage)
            computed += amount
            if row.subagent:
                subagent_cost += amount
            labels.append(rates.label)
        if unknown:
            computed = subagent_cost = None
            note = NOTE_NO_MODEL if not any(unknown) else note_unknown_model([m for m in unknown if m])
    if not subagent_usage:
        subagent_cost = None
    reported = facts.reported_cost
    convention = convention_of(facts.source)
    if reported is not None and reported == 0 and usage and convention.zero_cost_means_unknown:
        reported = None
        note = " ".join(filter(None, [note, NOTE_ZERO_REPORTED]))
    if not usage:
        # nothing to price: the plugin's figure if it sent one, else unknown (never a silent $0)
        source = CostSource.REPORTED if reported is not None else CostSource.NO_USAGE
        return PricedSession(usage, subagent_usage, None, None, reported, source, "", "")
    if computed is not None and computed >= MAX_COST:
        computed, note = None, NOTE_IMPLAUSIBLE
    if computed is not None:
        return PricedSession(
            usage,
            subagent_usage,
            _quantize(computed),
            _quantize(subagent_cost),
            _quantize(computed),
            CostSource.COMPUTED,
            note,
            " + ".join(dict.fromkeys(labels))[:255],
        )
    source = CostSource.REPORTED if reported is not None else CostSource.UNPRICED
    return PricedSession(usage, subagent_usage, None, None, reported, source, note, "")


def price_message(
    *,
    source: str | None,
    model: str | None,
    provider: str | None,
    when: datetime,
    prompt: int | None,
    completion: int | None,
    cache_read: int | None = None,
    cache_write: int | None = None,
    cache_write_5m: int | None = None,
    cache_write_1h: int | None = None,
    reasoning: int | None = None,
    book: PriceBook,
) -> Decimal | None:
    """One message (one request): its cost with tiered prices, or None when it has no tokens, no
    known price, or a convention that hides its cached part (as for sessions)."""
    convention = convention_of(source)
    if convention.folds_cache and prompt and not (cache_read or cache_write or cache_write_5m or cache_write_1h):
        return None
    usage = normalise(
        convention,
        prompt=prompt or 0,
        completion=completion or 0,
        cache_read=cache_read or 0,
        cache_write=cache_write or 0,
        cache_write_5m=cache_write_5m or 0,
        cache_write_1h=cache_write_1h or 0,
        reasoning=reasoning or 0,
    )
    if not usage:
        return None
    rates = book.rates(model, provider, when, prompt_total=usage.prompt_total)
    return None if rates is None else _quantize(rates.cost(usage))
