from __future__ import annotations

from django import forms

from calls.models import Call, Participant
from calls.search import CallFilters


class CallFilterForm(forms.Form):
    q = forms.CharField(label="Search transcripts", required=False, max_length=500)
    spoken_by = forms.ChoiceField(
        label="Said by",
        required=False,
        choices=[("", "Anyone"), (Participant.Role.AGENT, "An agent"), (Participant.Role.CUSTOMER, "The customer")],
        help_text="Search only what agents said, or only what customers said.",
    )
    date_from = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    state = forms.ChoiceField(label="State", required=False, choices=[("", "Any state"), *Call.State.choices])
    direction = forms.ChoiceField(
        label="Direction", required=False, choices=[("", "Any direction"), *Call.Direction.choices]
    )
    participant = forms.CharField(label="Participant number or id", required=False, max_length=300)
    has_gaps = forms.BooleanField(label="Only calls with gaps", required=False)
    on_hold = forms.BooleanField(label="Only calls under legal hold", required=False)

    def clean(self) -> dict:
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise forms.ValidationError("The start date is after the end date.")
        return data

    def filters(self) -> CallFilters:
        """The valid filters; an invalid form filters nothing."""
        if not self.is_valid():
            return CallFilters()
        data = self.cleaned_data
        return CallFilters(
            date_from=data["date_from"],
            date_to=data["date_to"],
            state=data["state"],
            direction=data["direction"],
            participant=data["participant"].strip(),
            has_gaps=data["has_gaps"],
            on_hold=data["on_hold"],
        )

    def search_text(self) -> str:
        return self.cleaned_data["q"].strip() if self.is_valid() else ""

    def speaker_role(self) -> str:
        return self.cleaned_data["spoken_by"] if self.is_valid() else ""

    def describe_search(self) -> str:
        """The search as the access log keeps it: the text and every filter given."""
        given = {name: value for name, value in self.cleaned_data.items() if value not in ("", None, False)}
        return "; ".join(f"{name}={value}" for name, value in given.items())
