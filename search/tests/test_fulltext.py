"""Full-text search over what the plugins sync: websearch syntax, ranking, highlighting, the
code-aware cases, titles, filters and workspace isolation."""

import json

import pytest

from accounts.models import Workspace
from accounts.services import api_key_create
from search.selectors import FULLTEXT, HYBRID, SEMANTIC, fuse, is_code_like, search_sessions
from sessions_app.models import Message, Session
from sessions_app.selectors import SessionFilters

pytestmark = pytest.mark.django_db


def sync(client, path, body):
    response = client.post(path, json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.content


def session(client, external_id, title=None, messages=(), **extra):
    sync(client, "/sync/session", {"externalId": external_id, "title": title, **extra})
    for i, message in enumerate(messages):
        sync(
            client, "/sync/message", {"sessionExternalId": external_id, "externalId": f"{external_id}-m{i}", **message}
        )


def titles(result):
    return [hit.session.title for hit in result.hits]


@pytest.fixture
def corpus(sync_client):
    session(
        sync_client,
        "s-db",
        "Fix the database connection",
        [
            {"role": "user", "textContent": "The API fails with ECONNREFUSED when connecting to postgres"},
            {"role": "assistant", "textContent": "Postgres wasn't running; I started the container."},
        ],
    )
    session(
        sync_client,
        "s-models",
        "Refactor the ORM layer",
        [
            {"role": "user", "textContent": "Split /home/dev/src/app/models.py into smaller modules"},
            {
                "role": "assistant",
                "parts": [
                    {"type": "tool-call", "content": {"toolName": "Edit", "args": {"file_path": "src/app/models.py"}}},
                    {"type": "tool-result", "content": "def parse_request(payload): ..."},
                ],
            },
        ],
    )
    session(
        sync_client,
        "s-react",
        "Frontend hooks",
        [
            {
                "role": "user",
                "textContent": "Why does useEffect run twice in development? The effects are connecting twice.",
            }
        ],
    )
    session(
        sync_client, "s-docs", "Write the deployment docs", [{"role": "user", "textContent": "Document the deploy."}]
    )
    return Workspace.objects.get(sessions__external_id="s-db")


def test_search_text_is_maintained_by_the_sync(corpus):
    message = Message.objects.get(external_id="s-models-m1")
    assert "Edit" in message.search_text and "src/app/models.py" in message.search_text
    assert "parse_request" in message.search_text


# (textContent, text parts): the stored search_text starts with sessions_app.message_text's text
TEXT_CASES = [
    ("Fixed the loop.", ["Fixed the loop."]),  # the same words twice: once
    ("Fixed the loop.", ["Fixed the loop.", "```python\nwhile ready():\n    poll()\n```"]),  # new words: kept
    ("Summary", ["Summary then more words"]),
    ("", ["only a part", "  "]),
    (None, ["a", "b"]),
    ("only text content", []),
    ("both", ["  both\n"]),
]


@pytest.mark.parametrize(("text", "parts"), TEXT_CASES)
def test_search_text_holds_the_text_of_the_message(sync_client, text, parts):
    """The stored search_text (SQL) and message_text (Python) give a message the same text: the
    text content, then the text parts whose words are not in it."""
    from sessions_app.message_text import message_text
    from sessions_app.models import Part

    body = {"role": "assistant", "parts": [{"type": "text", "content": p} for p in parts]}
    session(sync_client, "s-text", messages=[{**body, "textContent": text} if text is not None else body])
    message = Message.objects.get(external_id="s-text-m0")
    expected = message_text(message.text_content, Part.objects.filter(message=message).order_by("order"))
    assert message.search_text.strip("\n") == expected.strip("\n")


def test_a_text_part_with_words_the_text_content_lacks_is_searchable(sync_client):
    session(
        sync_client,
        "s-both",
        "Both",
        messages=[{"role": "assistant", "textContent": "Done.", "parts": [{"type": "text", "content": "zanzibar"}]}],
    )
    assert titles(search_sessions(Workspace.objects.get(), "zanzibar", mode=FULLTEXT)) == ["Both"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("postgres", ["Fix the database connection"]),
        ("connection", ["Fix the database connection", "Frontend hooks"]),  # stemmed: connecting
        ('"started the container"', ["Fix the database connection"]),
        ("useEffect OR container", ["Fix the database connection", "Frontend hooks"]),
        ("effects -development", []),  # exclusion applies per message (and per title)
        ("effects -postgres", ["Frontend hooks"]),
        ("ECONNREFUSED", ["Fix the database connection"]),
        ("econnrefused", ["Fix the database connection"]),
        ("src/app/models.py", ["Refactor the ORM layer"]),
        ("models.py", ["Refactor the ORM layer"]),
        ("parse_request", ["Refactor the ORM layer"]),
        ("useEffect", ["Frontend hooks"]),
        ("Edit", ["Refactor the ORM layer"]),  # a tool name
        ("deployment", ["Write the deployment docs"]),  # the title (and "deploy" in the text)
        ("kubernetes", []),
    ],
)
def test_queries(corpus, query, expected):
    assert sorted(titles(search_sessions(corpus, query))) == sorted(expected)


def test_results_point_at_the_matching_message_with_a_highlighted_snippet(corpus):
    hit = search_sessions(corpus, "ECONNREFUSED").hits[0]
    assert hit.message_id == Message.objects.get(external_id="s-db-m0").pk
    assert "<mark>ECONNREFUSED</mark>" in hit.snippet
    code = search_sessions(corpus, "models.py").hits[0]
    assert "<mark>models.py</mark>" in code.snippet


def test_ranking_prefers_more_matches_and_title_matches(sync_client, corpus):
    session(
        sync_client, "s-many", "Postgres tuning", [{"role": "user", "textContent": "postgres postgres vacuum postgres"}]
    )
    assert titles(search_sessions(corpus, "postgres"))[0] == "Postgres tuning"


def test_snippets_escape_hostile_content(sync_client, corpus):
    hostile = "<script>alert(1)</script> zebrafish <img src=x onerror=alert(2)> if a < b && c > d"
    session(sync_client, "s-xss", "x", [{"role": "user", "textContent": hostile}])
    snippet = search_sessions(corpus, "zebrafish").hits[0].snippet
    assert "<mark>zebrafish</mark>" in snippet
    assert "<" not in snippet.replace("<mark>", "").replace("</mark>", "")  # everything else escaped


def test_filters_and_pagination(sync_client, corpus):
    session(sync_client, "s-pi", "Pi postgres", [{"role": "user", "textContent": "postgres"}], source="pi")
    result = search_sessions(corpus, "postgres", filters=SessionFilters(source="pi"))
    assert titles(result) == ["Pi postgres"]
    first = search_sessions(corpus, "postgres", limit=1)
    second = search_sessions(corpus, "postgres", limit=1, offset=1)
    assert len(first.hits) == len(second.hits) == 1 and first.hits[0].session != second.hits[0].session


def test_no_result_ever_comes_from_another_workspace(client, corpus, other_user):
    other_ws = Workspace.objects.get(created_by=other_user, is_personal=True)
    _, raw = api_key_create(user=other_user, workspace=other_ws, name="k", scope="sync")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {raw}"
    session(client, "s-secret", "Their postgres secret", [{"role": "user", "textContent": "postgres ECONNREFUSED"}])
    for mode in (FULLTEXT, SEMANTIC, HYBRID):
        for query in ("postgres", "ECONNREFUSED", "secret"):
            assert all(hit.session.workspace_id == corpus.pk for hit in search_sessions(corpus, query, mode=mode).hits)
    assert Session.objects.filter(workspace=other_ws).exists()


def test_semantic_and_hybrid_fall_back_to_fulltext_without_a_provider(corpus, settings):
    settings.OPENSYNC_EMBEDDINGS_PROVIDER = "none"
    for mode in (SEMANTIC, HYBRID):
        result = search_sessions(corpus, "postgres", mode=mode)
        assert result.mode == FULLTEXT and result.requested_mode == mode
        assert "is turned off" in result.notice and titles(result) == ["Fix the database connection"]


def test_reciprocal_rank_fusion():
    fused = dict(fuse({"fulltext": [1, 2, 3], "semantic": [3, 4]}, k=60, weights={"fulltext": 1.0, "semantic": 1.0}))
    assert fused[1] == pytest.approx(1 / 61)
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[4] == pytest.approx(1 / 62)
    order = [doc for doc, _ in fuse({"a": [1, 2, 3], "b": [3, 4]}, k=60, weights={})]
    assert order == [3, 1, 2, 4]
    weighted = dict(fuse({"fulltext": [1], "semantic": [2]}, k=60, weights={"fulltext": 2.0, "semantic": 0.5}))
    assert weighted[1] == pytest.approx(2 / 61) and weighted[2] == pytest.approx(0.5 / 61)


@pytest.mark.parametrize(
    ("query", "words"),
    [("kubectl logs -n prod", "kubectl logs n prod"), ("pytest --lf -x", "pytest lf x"), ("db -postgres", "db -postgres"),
     ("a-b -c", "a-b c")],
)  # fmt: skip
def test_command_line_flags_are_words_not_exclusions(query, words):
    from search.selectors import unflag

    assert unflag(query) == words


def test_a_pasted_command_finds_its_session(sync_client, corpus):
    session(
        sync_client,
        "s-k8s",
        "Pods",
        [{"role": "user", "textContent": "ran kubectl logs -n prod api-7f9 and saw OOMKilled"}],
    )
    assert titles(search_sessions(corpus, "kubectl logs -n prod")) == ["Pods"]


@pytest.mark.parametrize(
    ("query", "code"),
    [("models.py", True), ("ECONNREFUSED", True), ("useEffect", True), ("parse_request", True), ("postgres", False),
     ("two words", False), ('"a.b"', False), ("-x.y", False)],
)  # fmt: skip
def test_code_like(query, code):
    assert is_code_like(query) is code
