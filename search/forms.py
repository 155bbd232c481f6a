from django import forms
from django.core.exceptions import ValidationError

from opensync.inputs import validate_text

from . import context
from .selectors import FULLTEXT, HYBRID, MAX_QUERY_CHARS, MODES, SEMANTIC

MODE_CHOICES = [(FULLTEXT, "Full-text"), (SEMANTIC, "Semantic"), (HYBRID, "Hybrid")]


def query_error(query: str) -> str | None:
    """Why the search box's text can't be searched for (the Search and Context pages), or None."""
    if len(query) > MAX_QUERY_CHARS:
        return f"The search is too long: at most {MAX_QUERY_CHARS} characters."
    try:
        validate_text(query)
    except ValidationError as exc:
        return f"The search can't be run: {exc.messages[0]}"
    return None


FORMAT_CHOICES = [(context.TEXT, "Plain text"), (context.MARKDOWN, "Markdown"), (context.XML, "XML-tagged")]


class ContextOptionsForm(forms.Form):
    budget = forms.IntegerField(
        label="Token budget",
        min_value=context.MIN_BUDGET,
        max_value=context.MAX_BUDGET,
        help_text="Counted with tiktoken (cl100k_base).",
        # no `step`: with min=100 it would make round budgets such as 8000 invalid in the browser
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
    )
    format = forms.ChoiceField(label="Copy as", choices=FORMAT_CHOICES, widget=forms.RadioSelect)


class PickForm(forms.Form):
    """Add a session, or one message of it, to the context; remove either; or clear everything."""

    action = forms.ChoiceField(choices=[("add", "add"), ("remove", "remove"), ("clear", "clear")])
    session = forms.IntegerField(required=False, min_value=1)
    message = forms.IntegerField(required=False, min_value=1)

    def clean(self):
        data = super().clean()
        if data.get("action") in ("add", "remove") and not data.get("session"):
            raise forms.ValidationError("Which session?")
        return data


class SavedSearchForm(forms.Form):
    q = forms.CharField(label="Search", max_length=MAX_QUERY_CHARS, strip=True, validators=[validate_text])
    mode = forms.ChoiceField(choices=[(mode, mode) for mode in MODES])
    name = forms.CharField(max_length=120, required=False, strip=True)


class BookmarkForm(forms.Form):
    session = forms.IntegerField(min_value=1)
    message = forms.IntegerField(required=False, min_value=1)
    on = forms.BooleanField(required=False)
