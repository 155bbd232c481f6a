"""The SQL that computes a message's searchable text (Message.search_text).

No Django imports here, so benchmarks can run the same statement against a bare database.
"""

PART_TABLE = "sessions_app_part"

# The searchable text of a message (sessions_app.Message.search_text, indexed by full-text and
# trigram search): its text content, then its parts: the text parts whose words are not already
# in the text content (sessions_app.message_text's rule: plugins often send the same words twice,
# and sometimes not), tool names and arguments, tool results
# and other parts cut to PART_SEARCH_CHARS each; the whole cut to MESSAGE_SEARCH_CHARS (a
# tsvector holds at most 1 MB, and a whole file read by a tool is mostly noise for search).
MESSAGE_SEARCH_CHARS = 50_000
PART_SEARCH_CHARS = 2_000
SEARCH_TEXT_SQL = f"""
left(concat_ws(E'\\n', m.text_content, (
    SELECT string_agg(
        CASE
            WHEN p.type = 'text' AND strpos(coalesce(m.text_content, ''), btrim(CASE jsonb_typeof(p.content)
                WHEN 'string' THEN p.content #>> '{{}}' ELSE coalesce(p.content ->> 'text', p.content ->> 'content')
                END, E' \t\r\n')) > 0 THEN NULL
            WHEN jsonb_typeof(p.content) = 'string' THEN
                CASE WHEN p.type IN ('text', 'thinking', 'reasoning') THEN p.content #>> '{{}}'
                     ELSE left(p.content #>> '{{}}', {PART_SEARCH_CHARS}) END
            WHEN jsonb_typeof(p.content) = 'object' THEN left(concat_ws(' ',
                p.content ->> 'toolName', p.content ->> 'name', p.content ->> 'text', p.content ->> 'content',
                p.content ->> 'result', p.content ->> 'output', p.content ->> 'error',
                p.content -> 'args', p.content -> 'arguments', p.content -> 'input'), {PART_SEARCH_CHARS})
            WHEN jsonb_typeof(p.content) IN ('array', 'number', 'boolean')
                THEN left(p.content::text, {PART_SEARCH_CHARS})
        END, E'\\n' ORDER BY p."order")
    FROM {PART_TABLE} p WHERE p.message_id = m.id
)), {MESSAGE_SEARCH_CHARS})
"""
