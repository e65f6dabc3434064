"""Payload builders: communication identifiers, callback CloudEvents (acs-protocol.md 3.1-3.3) and
Event Grid events (3.4, 3.5)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

API_VERSION = "2026-03-12"

MEDIA_STARTED = ("mediaStreamingStarted", "subscriptionStarted")
MEDIA_STOPPED = ("mediaStreamingStopped", "subscriptionStopped")
TRANSCRIPTION_STARTED = ("transcriptionStarted", "subscriptionStarted")
TRANSCRIPTION_STOPPED = ("transcriptionStopped", "subscriptionStopped")
TRANSCRIPTION_UPDATED = ("transcriptionUpdated", "transcriptionLocaleUpdated")
TRANSCRIPTION_RESUMED = ("transcriptionResumed", "streamConnectionReestablished")


def identifier(raw_id: str) -> dict[str, Any]:
    """The wire form of a CommunicationIdentifier for a raw id (prefixes per acs-protocol.md 1.4)."""
    if raw_id.startswith("4:"):
        return {"rawId": raw_id, "kind": "phoneNumber", "phoneNumber": {"value": raw_id[2:]}}
    if raw_id.startswith("8:acs:"):
        return {"rawId": raw_id, "kind": "communicationUser", "communicationUser": {"id": raw_id}}
    return {"rawId": raw_id, "kind": "unknown"}


def raw_id_of(wire_identifier: dict[str, Any]) -> str:
    if wire_identifier.get("rawId"):
        return wire_identifier["rawId"]
    if "phoneNumber" in wire_identifier:
        return "4:" + wire_identifier["phoneNumber"]["value"]
    if "communicationUser" in wire_identifier:
        return wire_identifier["communicationUser"]["id"]
    raise ValueError("identifier has no rawId")


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def result_information(code: int = 200, sub_code: int = 0, message: str = "Action completed successfully.") -> dict:
    return {"code": code, "subCode": sub_code, "message": message}


def cloud_event(name: str, call: dict[str, str], data: dict[str, Any]) -> dict[str, Any]:
    """One callback CloudEvent; `call` carries callConnectionId, serverCallId, correlationId."""
    source = f"calling/callConnections/{call['callConnectionId']}"
    event_type = f"Microsoft.Communication.{name}"
    payload = {
        **data,
        **call,
        "eventSource": source,
        "version": API_VERSION,
        "publicEventType": event_type,
    }
    return {
        "id": str(uuid.uuid4()),
        "source": source,
        "type": event_type,
        "data": payload,
        "time": now_iso(),
        "specversion": "1.0",
        "datacontenttype": "application/json",
        "subject": source,
    }


def media_streaming_update(status: tuple[str, str]) -> dict[str, Any]:
    # "Audio" is capitalised in events although requests say "audio" (acs-protocol.md 3.2).
    update = {"contentType": "Audio", "mediaStreamingStatus": status[0], "mediaStreamingStatusDetails": status[1]}
    return {"mediaStreamingUpdate": update}


def transcription_update(status: tuple[str, str]) -> dict[str, Any]:
    return {"transcriptionUpdate": {"transcriptionStatus": status[0], "transcriptionStatusDetails": status[1]}}


def participants_update(raw_ids: list[str], sequence_number: int) -> dict[str, Any]:
    participants = [{"identifier": identifier(raw), "isMuted": False, "isOnHold": False} for raw in raw_ids]
    return {"participants": participants, "sequenceNumber": sequence_number}


def subscription_validation(validation_code: str) -> list[dict[str, Any]]:
    return [
        {
            "id": str(uuid.uuid4()),
            "topic": "/subscriptions/00000000-0000-0000-0000-000000000000",
            "subject": "",
            "data": {
                "validationCode": validation_code,
                "validationUrl": "http://127.0.0.1/emulator/eventgrid/validate?id=" + validation_code,
            },
            "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
            "eventTime": now_iso(),
            "metadataVersion": "1",
            "dataVersion": "1",
        }
    ]


def incoming_call(
    caller: str, caller_name: str, callee: str, context: str, server_call_id: str, correlation_id: str, resource_id: str
) -> list[dict[str, Any]]:
    topic = (
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/emulator/providers/"
        f"Microsoft.Communication/communicationServices/acs-emulator-{resource_id[-4:]}"
    )
    return [
        {
            "id": str(uuid.uuid4()),
            "topic": topic,
            "subject": f"/caller/{caller}/recipient/{callee}",
            "data": {
                "to": identifier(callee),
                "from": identifier(caller),
                "serverCallId": server_call_id,
                "callerDisplayName": caller_name,
                "incomingCallContext": context,
                "correlationId": correlation_id,
            },
            "eventType": "Microsoft.Communication.IncomingCall",
            "dataVersion": "1.0",
            "metadataVersion": "1",
            "eventTime": now_iso(),
        }
    ]
