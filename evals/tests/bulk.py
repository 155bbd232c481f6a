"""Many coding conversations in a few bulk inserts, for tests that export thousands of sessions
(the real-worker test and the export browser test)."""

from collections.abc import Callable
from datetime import timedelta

from sessions_app.models import Message, Part


def add_conversations(
    sessions, *, tool_output: Callable[[int], str], answer: Callable[[int], str], second_every: int
) -> int:
    """Give each of `sessions` (saved, in order) a prompt, an assistant turn with text and a Read
    tool call, the tool's result and the answer, a second apart from the session's creation;
    every `second_every`-th session (the first included) gets a second exchange. Two bulk
    inserts whatever the number of sessions. Returns how many exchanges there are."""
    specs = []  # (session, role, parts) in display order
    for i, session in enumerate(sessions):
        call = {"toolName": "Read", "args": {"file_path": f"src/app/module_{i}.py"}, "toolCallId": f"call-{i}"}
        specs += [
            (session, "user", [("text", {"text": f"Why does test_sync_{i} fail on CI?"})]),
            (session, "assistant", [("text", {"text": "Let me read the module."}), ("tool-call", call)]),
            (session, "tool", [("tool-result", {"toolCallId": f"call-{i}", "output": tool_output(i)})]),
            (session, "assistant", [("text", {"text": answer(i)})]),
        ]
        if i % second_every == 0:
            specs += [
                (session, "user", [("text", {"text": "Add the backoff, please."})]),
                (session, "assistant", [("text", {"text": "Done: `retry_with_backoff` wraps the call."})]),
            ]
    first: dict[int, int] = {}  # each session's first message index
    for k, (session, _, _) in enumerate(specs):
        first.setdefault(session.pk, k)
    messages = Message.objects.bulk_create(
        Message(
            session=session,
            external_id=f"m{k:07d}",
            role=role,
            text_content=parts[0][1]["text"] if parts[0][0] == "text" else None,
            created_at=session.created_at + timedelta(seconds=k - first[session.pk]),
        )
        for k, (session, role, parts) in enumerate(specs)
    )
    Part.objects.bulk_create(
        Part(message=message, type=kind, content=content, order=order)
        for message, (_, _, parts) in zip(messages, specs, strict=True)
        for order, (kind, content) in enumerate(parts)
    )
    return len(sessions) + len(range(0, len(sessions), second_every))
