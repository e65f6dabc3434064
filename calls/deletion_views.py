"""Deleting a call from its page: the staff member types the call's id and a reason (calls/deletion.py)."""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from calls import deletion
from calls.models import Call
from calls.permissions import visible_calls
from calls.views import staff_watch_required


class DeleteCallForm(forms.Form):
    confirmation = forms.CharField(label="Type the call's id to confirm", max_length=64)
    reason = forms.CharField(label="Why is it deleted?", widget=forms.Textarea(attrs={"rows": 3}), max_length=1000)

    def __init__(self, *args: object, call: Call, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.call = call

    def clean_confirmation(self) -> str:
        typed = self.cleaned_data["confirmation"].strip()
        if typed != str(self.call.pk):
            raise forms.ValidationError("That is not this call's id: nothing was deleted.")
        return typed


@staff_watch_required
def delete_call(request: HttpRequest, call_id: uuid.UUID) -> HttpResponse:
    if not request.user.has_perm(deletion.DELETE_PERMISSION):
        raise PermissionDenied
    call = get_object_or_404(visible_calls(request.user), pk=call_id)
    form = DeleteCallForm(request.POST or None, call=call)
    refusal = None
    try:
        deletion.check_deletable(call)
    except deletion.DeletionRefused as refused:
        refusal = str(refused)
    if request.method == "POST" and refusal is None and form.is_valid():
        try:
            receipt = deletion.delete_call(call, user=request.user, reason=form.cleaned_data["reason"])
        except deletion.DeletionRefused as refused:  # held or ended meanwhile
            refusal = str(refused)
        else:
            messages.success(request, f"Call deleted: only its tombstone is left (receipt {receipt.pk}).")
            return redirect(call)
    status = 409 if refusal and request.method == "POST" else 200
    return render(request, "calls/call_delete.html", {"call": call, "form": form, "refusal": refusal}, status=status)
