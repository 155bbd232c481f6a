from django import forms

from .models import ApiKeyScope, Role, Workspace


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, widget=forms.TextInput(attrs={"placeholder": "e.g. work laptop"}))
    workspace = forms.ChoiceField()
    scope = forms.ChoiceField(choices=ApiKeyScope.choices, initial=ApiKeyScope.SYNC)

    def __init__(self, *args, workspaces, **kwargs):
        super().__init__(*args, **kwargs)
        self.workspaces = {str(w.pk): w for w in workspaces}
        self.fields["workspace"].choices = [(str(w.pk), w.name) for w in workspaces]

    def clean_workspace(self):
        return self.workspaces[self.cleaned_data["workspace"]]


class WorkspaceForm(forms.Form):
    name = forms.CharField(max_length=100, widget=forms.TextInput(attrs={"placeholder": "e.g. Platform team"}))


class InvitationForm(forms.Form):
    email = forms.EmailField()
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ProfileForm(forms.Form):
    name = forms.CharField(
        label="Display name",
        max_length=150,
        required=False,
        help_text="Shown instead of your email address. Leave empty to use the email.",
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )

    def clean_name(self):
        name = self.cleaned_data["name"]
        if any(not ch.isprintable() for ch in name):
            raise forms.ValidationError("Use letters, digits, spaces and punctuation only.")
        return name


class DeleteAccountForm(forms.Form):
    email = forms.CharField(
        label="Type your email address to confirm",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "off"}),
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_email(self):
        email = self.cleaned_data["email"].strip()
        if email.lower() != self.user.email.lower():
            raise forms.ValidationError("That is not your email address. Type it exactly as shown.")
        return email


class RetentionForm(forms.ModelForm):
    """An admin's retention setting; turning it on (or shortening it) needs an explicit confirmation."""

    confirm = forms.BooleanField(
        required=False,
        label="I understand that sessions older than this are deleted every night, irreversibly.",
    )

    class Meta:
        model = Workspace
        fields = ["retention_days"]

    def clean(self):
        cleaned = super().clean()
        days = cleaned.get("retention_days")
        previous = self.instance.retention_days
        shorter = days is not None and (previous is None or days < previous)
        if shorter and not cleaned.get("confirm"):
            self.add_error("confirm", "Confirm that old sessions will be deleted for good.")
        return cleaned
