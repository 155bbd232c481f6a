from django import forms

from accounts.selectors import enabled_sources
from opensync.http import BULK_LIMIT
from opensync.inputs import whole_number
from sessions_app.forms import SessionFilterForm
from sessions_app.models import EvalStatus
from sessions_app.selectors import filter_choices, workspace_members

from .formats import FORMATS, PER_TURN, TURN_MODES, Options
from .models import EvalTag
from .services import ReviewError, normalise_tags


class EvalFilterForm(SessionFilterForm):
    """The Evals page's filters: the session list's, plus tags (any of them) and reviewer."""

    tags = forms.CharField(required=False, max_length=500, help_text="Comma-separated: sessions with any of them.")
    reviewer = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)

    def __init__(self, data, *, members=None, tag_choices=(), **kwargs):
        super().__init__(data, members=members, **kwargs)
        del self.fields["sort"], self.fields["dir"]  # the page lists by last update
        self.tag_choices = tag_choices
        if members:
            self.fields["reviewer"].choices = [("", "Anyone"), *((m.pk, m.get_full_name()) for m in members)]
        else:
            del self.fields["reviewer"]

    @classmethod
    def for_request(cls, request, workspace) -> "EvalFilterForm":
        return cls(
            request.GET,
            sources=enabled_sources(request.user),
            choices=filter_choices(workspace),
            members=workspace_members(workspace),
            tag_choices=list(EvalTag.objects.filter(workspace=workspace).values_list("name", flat=True)[:500]),
        )

    def clean_tags(self):
        try:
            return normalise_tags(self.cleaned_data["tags"])
        except ReviewError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def tag_list(self) -> list[str]:
        self.is_valid()
        return [] if "tags" in self.errors else self.cleaned_data.get("tags") or []

    def reviewer_id(self) -> int | None:
        self.is_valid()
        return self.cleaned_data.get("reviewer") if "reviewer" not in self.errors else None


class BulkReviewForm(forms.Form):
    ACTIONS = [
        ("status", "Set status"),
        ("add_tag", "Add tag"),
        ("remove_tag", "Remove tag"),
        ("not_ready", "Take out of evals"),
    ]
    action = forms.ChoiceField(choices=ACTIONS)
    status = forms.ChoiceField(required=False, choices=[("", "No status"), *EvalStatus.choices])
    tag = forms.CharField(required=False, max_length=200)
    ids = forms.CharField(widget=forms.MultipleHiddenInput, required=False)

    def clean(self):
        data = super().clean()
        if data.get("action") in ("add_tag", "remove_tag") and not (data.get("tag") or "").strip():
            self.add_error("tag", "Which tag?")
        return data


class ExportForm(forms.Form):
    """The export modal: format, options and scope. `options()` gives evals.formats.Options."""

    format = forms.ChoiceField(choices=[(f.name, f.label) for f in FORMATS.values()], initial="deepeval")
    turn_mode = forms.ChoiceField(choices=list(TURN_MODES.items()), initial=PER_TURN, required=False)
    include_tools = forms.BooleanField(required=False, initial=True, label="Include tool calls")
    include_system = forms.BooleanField(required=False, label="Include system prompts")
    anonymize_paths = forms.BooleanField(required=False, initial=True, label="Anonymize home paths")
    redact_secrets = forms.BooleanField(required=False, initial=True, label="Redact secrets")
    code_blocks_only = forms.BooleanField(required=False, label="Only exchanges with code blocks")
    min_length = forms.IntegerField(
        required=False, min_value=0, max_value=100_000, initial=0, label="Minimum message length",
        help_text="Characters; shorter prompts or answers are left out.",
    )  # fmt: skip
    replay = forms.BooleanField(required=False, initial=True, label="Replay recorded answers (providerOutput)")
    scope = forms.ChoiceField(
        choices=[("filter", "Every eval-ready session matching the filters"), ("selection", "The ticked sessions")],
        initial="filter",
        widget=forms.RadioSelect,
    )
    ids = forms.CharField(required=False, widget=forms.MultipleHiddenInput)
    filters = forms.CharField(required=False, widget=forms.HiddenInput, max_length=4000)

    def clean_ids(self) -> list[int]:
        raw = self.data.getlist("ids") if hasattr(self.data, "getlist") else []
        return sorted({pk for value in raw[:BULK_LIMIT] if (pk := whole_number(str(value))) is not None})

    def clean(self):
        data = super().clean()
        if data.get("format") in FORMATS:
            fmt = FORMATS[data["format"]]
            if not fmt.turn_modes:
                data["turn_mode"] = PER_TURN  # whole sessions: no turn mode
            elif data.get("turn_mode") not in fmt.turn_modes:
                self.add_error("turn_mode", f"{fmt.label} has no such turn mode.")
        if data.get("scope") == "selection" and not data.get("ids"):
            self.add_error("scope", "Tick at least one session on the Evals page, or export the filtered sessions.")
        return data

    def options(self) -> Options:
        data = self.cleaned_data
        return Options(
            turn_mode=data.get("turn_mode") or PER_TURN,
            include_tools=data.get("include_tools", True),
            include_system=data.get("include_system", False),
            anonymize_paths=data.get("anonymize_paths", False),
            redact_secrets=data.get("redact_secrets", True),
            min_length=data.get("min_length") or 0,
            code_blocks_only=data.get("code_blocks_only", False),
            replay=data.get("replay", True),
        )
