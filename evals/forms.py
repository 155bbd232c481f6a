from django import forms

from accounts.selectors import enabled_sources
from sessions_app.forms import SessionFilterForm
from sessions_app.models import EvalStatus
from sessions_app.selectors import filter_choices, workspace_members

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
