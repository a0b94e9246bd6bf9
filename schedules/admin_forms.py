"""The schedule admin form: an edit is checked by the API's own schedule validation (what a PATCH runs), and
saved by the PATCH service, so a bad cron, timezone or job template is a form error, never a row the ticker
chokes on. The template's http header values show masked; a masked value saved unchanged keeps the stored one."""

from __future__ import annotations

from typing import Any

from django import forms

from config.exceptions import ApplicationError, ValidationFailed
from queues.masking import target_masked, target_unmasked

from .models import Schedule
from .serializers import JOB_TEMPLATE_FIELDS
from .services.validation import validate

# The model fields an admin edit sends through the validation, by the API's names (they are the same).
API_FIELDS = ("description", "cron", "interval_ms", "timezone", "job", "overlap", "paused")


def template_masked(template: Any) -> Any:
    if not isinstance(template, dict) or "http" not in template:
        return template
    return {**template, "http": target_masked(template["http"])}


class ScheduleAdminForm(forms.ModelForm):
    class Meta:
        model = Schedule
        fields = "__all__"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.api_changes: dict[str, Any] = {}
        if not self.instance._state.adding and "job" in self.fields:
            self.initial["job"] = template_masked(self.instance.job)

    def _patch_body(self, cleaned: dict[str, Any]) -> dict[str, Any]:
        """What changed, as a PATCH body; the template in full, so a key removed here is removed (set to null)."""
        body = {name: cleaned[name] for name in API_FIELDS if name in self.changed_data and name in cleaned}
        if "job" in body:
            given = body["job"] if isinstance(body["job"], dict) else {}
            stored_http = (self.instance.job or {}).get("http")
            given = (
                {**given, "http": target_unmasked(given.get("http"), stored_http)}
                if "http" in given
                else given
            )
            body["job"] = {key: given.get(key) for key in JOB_TEMPLATE_FIELDS} | {
                key: value for key, value in given.items() if key not in JOB_TEMPLATE_FIELDS
            }
        if "cron" in body or "interval_ms" in body or "timezone" in body:
            # The three together: the validation's switch logic reads which of them the body names.
            body.update({name: cleaned.get(name) for name in ("cron", "interval_ms", "timezone")})
        return body

    def _add_errors(self, exc: ApplicationError) -> None:
        if not isinstance(exc, ValidationFailed) or not exc.details:
            self.add_error(None, f"{exc.message} {exc.details or ''}".strip())
            return
        for key, lines in exc.details.items():
            field = key.split(".", 1)[0]
            messages = [f"{key}: {line}" if key != field else str(line) for line in lines]
            self.add_error(field if field in self.fields else None, messages)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors or self.instance._state.adding:
            return cleaned
        body = self._patch_body(cleaned)
        if not body:
            return cleaned
        try:
            checked = validate(workspace=self.instance.workspace, data=body, current=self.instance)
        except ApplicationError as exc:
            self._add_errors(exc)
            return cleaned
        for name, value in checked.values.items():
            if name in self.fields:
                cleaned[name] = value
        self.api_changes = body
        return cleaned
