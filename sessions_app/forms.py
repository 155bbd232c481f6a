import zoneinfo
from datetime import date

from django import forms

from accounts.selectors import enabled_sources

from .models import MAX_RATE, EvalStatus, validate_model_pattern
from .selectors import SORTS, SessionFilters, filter_choices, workspace_members
from .services import SHARE_EXPIRY_CHOICES

EVAL_CHOICES = [
    ("", "Any"),
    ("ready", "Eval-ready"),
    ("not_ready", "Not eval-ready"),
    *EvalStatus.choices,
    ("unset", "No status"),
]
SORT_CHOICES = [
    ("updated", "Last updated"),
    ("created", "Created"),
    ("tokens", "Tokens"),
    ("cost", "Cost"),
    ("duration", "Duration"),
    ("messages", "Messages"),
]
assert {key for key, _ in SORT_CHOICES} == set(SORTS)


class SessionFilterForm(forms.Form):
    """The session list's filters, read from the query string (the URL is the filter state).

    Menus are built per workspace: sources from the user's enabled agents, the rest from the
    workspace's own values. An invalid value is reported and that filter ignored.
    """

    source = forms.ChoiceField(required=False, label="Agent")
    project = forms.CharField(required=False, max_length=255)
    model = forms.CharField(required=False, max_length=255)
    provider = forms.CharField(required=False, max_length=255)
    owner = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    eval = forms.ChoiceField(required=False, choices=EVAL_CHOICES, label="Eval status")
    sort = forms.ChoiceField(required=False, choices=SORT_CHOICES)
    dir = forms.ChoiceField(required=False, choices=[("desc", "Descending"), ("asc", "Ascending")], label="Order")

    def __init__(self, data, *, sources, choices, members=None):
        if (data.get("date_from") or data.get("date_to")) and not data.get("sort"):
            # A creation-date range lists by creation date unless another sort was picked: the
            # order people expect, and the (workspace, created_at) index serves both.
            data = data.copy()
            data["sort"] = "created"
        super().__init__(data)
        self.fields["source"].choices = [("", "All agents"), *sources]
        self.choices = choices  # for <datalist>s
        if members:
            self.fields["owner"].choices = [("", "Everyone"), *((m.pk, m.get_full_name()) for m in members)]
        else:
            del self.fields["owner"]

    @classmethod
    def for_request(cls, request, workspace) -> "SessionFilterForm":
        """The filters in `request`'s query string, with the menus of `workspace` and the user's agents."""
        return cls(
            request.GET,
            sources=enabled_sources(request.user),
            choices=filter_choices(workspace),
            members=workspace_members(workspace),
        )

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return cleaned

    def filters(self) -> SessionFilters:
        """The valid filters; fields with errors count as unset."""
        self.is_valid()
        data = {name: value for name, value in self.cleaned_data.items() if value not in (None, "")}
        return SessionFilters(
            source=data.get("source", ""),
            project=data.get("project", ""),
            model=data.get("model", ""),
            provider=data.get("provider", ""),
            owner=data.get("owner"),
            date_from=data.get("date_from"),
            date_to=data.get("date_to") if "date_to" not in self.errors else None,
            eval=data.get("eval", ""),
            sort=data.get("sort", "updated"),
            direction=data.get("dir", "desc"),
        )

    @property
    def active(self) -> bool:
        """Whether any filter (not the sort) narrows the list."""
        return any(self.data.get(name) for name in self.fields if name not in ("sort", "dir"))


class RenameForm(forms.Form):
    title = forms.CharField(max_length=500, required=False, strip=True)


class ShareForm(forms.Form):
    action = forms.ChoiceField(choices=[("share", "Share"), ("unshare", "Stop sharing")])
    expires = forms.ChoiceField(
        required=False,
        choices=[("", "Never"), ("1d", "In 1 day"), ("7d", "In 7 days"), ("30d", "In 30 days")],
        label="Link expires",
    )

    def expires_in(self):
        return SHARE_EXPIRY_CHOICES[self.cleaned_data.get("expires") or ""]


# --- Analytics settings: time zone, budget, price overrides --------------------------------------

TIME_ZONES = sorted(zoneinfo.available_timezones() - {"localtime", "Factory"})


class AnalyticsSettingsForm(forms.Form):
    timezone = forms.ChoiceField(
        label="Time zone",
        choices=[(name, name.replace("_", " ")) for name in TIME_ZONES],
        help_text="Where days and months begin in Analytics and the budget.",
    )
    monthly_budget = forms.DecimalField(
        label="Monthly budget (USD)",
        required=False,
        min_value=0,
        max_digits=12,
        decimal_places=2,
        help_text="Admins see a banner at 80% and 100% of it. Empty: no budget.",
        widget=forms.NumberInput(attrs={"step": "0.01", "placeholder": "e.g. 500"}),
    )


def _rate(label: str, *, required: bool = True, help_text: str = "") -> forms.DecimalField:
    return forms.DecimalField(
        label=label,
        required=required,
        min_value=0,
        max_value=MAX_RATE,
        max_digits=14,
        decimal_places=6,
        help_text=help_text,
        widget=forms.NumberInput(attrs={"step": "any", "inputmode": "decimal"}),
    )


class PriceOverrideForm(forms.Form):
    """Prices in USD per million tokens; `effective_from` is a day in the workspace's time zone."""

    model_pattern = forms.CharField(
        label="Model",
        max_length=255,
        help_text="As the plugins send it (see the Model column of Analytics), e.g. claude-sonnet-4-5-20250929; "
        "end with * for every model starting so, e.g. claude-sonnet-4-5*.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    input_per_m = _rate("Input $/M")
    output_per_m = _rate("Output $/M")
    cache_read_per_m = _rate("Cache read $/M", required=False, help_text="Empty: the input price.")
    cache_write_5m_per_m = _rate("Cache write 5 min $/M", required=False, help_text="Empty: the input price.")
    cache_write_1h_per_m = _rate("Cache write 1 hour $/M", required=False, help_text="Empty: the input price.")
    effective_from = forms.DateField(
        label="From",
        help_text="Sessions started on or after this day use this price.",
        widget=forms.DateInput(attrs={"type": "date", "min": "2000-01-01", "max": "2100-12-31"}),
    )
    note = forms.CharField(max_length=200, required=False, help_text="e.g. the contract it comes from.")

    def clean_model_pattern(self):
        value = self.cleaned_data["model_pattern"].strip()
        validate_model_pattern(value)
        return value

    def clean_effective_from(self):
        value = self.cleaned_data["effective_from"]
        if not date(2000, 1, 1) <= value <= date(2100, 12, 31):
            raise forms.ValidationError("Choose a day between 2000 and 2100.")
        return value
