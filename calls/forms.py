from __future__ import annotations

from django import forms

from calls.models import Call
from calls.search import CallFilters


class CallFilterForm(forms.Form):
    q = forms.CharField(label="Search transcripts", required=False, max_length=500)
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
