from django import forms

from .models import ApiKeyScope, Role


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
