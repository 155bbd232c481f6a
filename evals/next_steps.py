"""The "what's next" panel after a build: copy-paste commands that run the file in its tool, for
that tool's current CLI (eval-formats.md: `deepeval test run` takes a test file, not the
dataset; `oaieval` takes a registered eval name, not a file; Promptfoo reads the tests from
its config). The zip export's README.txt carries the same steps.
"""

import json
from dataclasses import dataclass

from .formats import ITEM_SCHEMA, MULTI_TURN, Format, Options


@dataclass(frozen=True)
class Step:
    title: str
    code: str
    note: str = ""


DEEPEVAL_SINGLE = """import pytest
from deepeval import assert_test
from deepeval.dataset import EvaluationDataset
from deepeval.metrics import AnswerRelevancyMetric
from deepeval.test_case import LLMTestCase

dataset = EvaluationDataset()
dataset.add_goldens_from_json_file(file_path="{filename}")


@pytest.mark.parametrize("golden", dataset.goldens, ids=lambda golden: golden.name)
def test_opensync(golden):
    test_case = LLMTestCase(
        input=golden.input,
        # the recorded answer; call your own agent here to test a new version instead
        actual_output=golden.actual_output or "",
        expected_output=golden.expected_output,
        context=golden.context,
        tools_called=golden.tools_called,
    )
    assert_test(test_case, [AnswerRelevancyMetric(threshold=0.5)])
"""

DEEPEVAL_MULTI = """import pytest
from deepeval import assert_test
from deepeval.dataset import EvaluationDataset
from deepeval.metrics import TurnRelevancyMetric
from deepeval.test_case import ConversationalTestCase

dataset = EvaluationDataset()
dataset.add_goldens_from_json_file(file_path="{filename}")


@pytest.mark.parametrize("golden", dataset.goldens, ids=lambda golden: golden.name)
def test_opensync(golden):
    test_case = ConversationalTestCase(
        turns=golden.turns,
        scenario=golden.scenario,
        expected_outcome=golden.expected_outcome,
        context=golden.context,
    )
    assert_test(test_case, [TurnRelevancyMetric(threshold=0.5)])
"""

OAIEVAL_REGISTRY = """mkdir -p registry/evals registry/data/opensync
cp {filename} registry/data/opensync/samples.jsonl
cat > registry/evals/opensync.yaml <<'EOF'
opensync-includes:
  id: opensync-includes.dev.v0
  metrics: [accuracy]
opensync-includes.dev.v0:
  class: evals.elsuite.basic.includes:Includes
  args:
    samples_jsonl: opensync/samples.jsonl
opensync-fact:
  id: opensync-fact.dev.v0
  metrics: [accuracy]
opensync-fact.dev.v0:
  class: evals.elsuite.modelgraded.classify:ModelBasedClassify
  args:
    samples_jsonl: opensync/samples.jsonl
    eval_type: cot_classify
    modelgraded_spec: fact
EOF"""

OPENAI_API = '''import json
from openai import OpenAI

client = OpenAI()  # reads OPENAI_API_KEY
item_schema = json.loads("""{schema}""")
data = client.files.create(file=open("{filename}", "rb"), purpose="evals")
evaluation = client.evals.create(
    name="opensync",
    data_source_config={{"type": "custom", "item_schema": item_schema, "include_sample_schema": True}},
    testing_criteria=[
        {{
            "type": "text_similarity",
            "name": "close to the ideal answer",
            "input": "{{{{sample.output_text}}}}",
            "reference": "{{{{item.ideal}}}}",
            "evaluation_metric": "fuzzy_match",
            "pass_threshold": 0.6,
        }}
    ],
)
# grades the recorded answers (each row's "sample"); use a "responses" data source to test a new model
run = client.evals.runs.create(
    evaluation.id,
    name="recorded answers",
    data_source={{"type": "jsonl", "source": {{"type": "file_id", "id": data.id}}}},
)
print(run.report_url)
'''

PROMPTFOO_CONFIG = """cat > promptfooconfig.yaml <<'EOF'
prompts:
  - "{{{{history}}}}\\n\\nuser: {{{{input}}}}"
providers:
  - openai:gpt-4o-mini
tests: file://{filename}
EOF"""


def steps(fmt: Format, options: Options, filename: str) -> list[Step]:
    """How to run `filename` (an export in `fmt`) in its tool."""
    if fmt.name == "deepeval":
        multi = options.turn_mode == MULTI_TURN
        return [
            Step("Install DeepEval", "pip install -U deepeval"),
            Step(
                "Save this as test_opensync.py next to the file",
                (DEEPEVAL_MULTI if multi else DEEPEVAL_SINGLE).format(filename=filename),
                "The metric uses an LLM judge (OPENAI_API_KEY, or `deepeval set-…` for another model). "
                "ExactMatchMetric() needs none, but only scores goldens that have an expected output.",
            ),
            Step("Run it", "deepeval test run test_opensync.py", "It takes the test file, not the JSON."),
        ]
    if fmt.name == "openai":
        return [
            Step("Install OpenAI Evals", "pip install evals", "The PyPI package is `evals`, not `openai-evals`."),
            Step("Register the samples as evals", OAIEVAL_REGISTRY.format(filename=filename)),
            Step(
                "Run an eval against a model",
                "oaieval gpt-4o-mini opensync-includes --registry_path registry\n"
                "oaieval gpt-4o-mini opensync-fact --registry_path registry",
                "`oaieval` takes a model and a registered eval name, not the file. "
                "`oaieval dummy opensync-includes --registry_path registry` checks the set-up without a model.",
            ),
        ]
    if fmt.name == "openai-evals-api":
        schema = json.dumps(ITEM_SCHEMA)
        return [
            Step("Install the OpenAI SDK", "pip install -U openai"),
            Step(
                "Upload the file, create the eval and grade the recorded answers",
                OPENAI_API.format(filename=filename, schema=schema),
                'Each row is {"item": …, "sample": …}; the item schema above is the one the file follows.',
            ),
        ]
    if fmt.name in ("promptfoo", "promptfoo-yaml"):
        replay = (
            "Tests carry the recorded answer as providerOutput, so they grade what the agent said without "
            "calling the provider (Promptfoo still wants the provider's key set); export without “Replay "
            "recorded answers” to test the providers instead. "
        )
        return [
            Step("Write a Promptfoo config next to the file", PROMPTFOO_CONFIG.format(filename=filename)),
            Step(
                "Run it",
                "npx promptfoo@latest eval -c promptfooconfig.yaml\nnpx promptfoo@latest view",
                (replay if options.replay else "")
                + "llm-rubric assertions need a grader: OPENAI_API_KEY, or --grader <provider>.",
            ),
        ]
    if fmt.name == "chat":
        return [
            Step(
                "Load it as a dataset",
                f'pip install datasets\npython -c "from datasets import load_dataset; '
                f"print(load_dataset('json', data_files='{filename}'))\"",
            ),
            Step(
                "Or upload it for fine-tuning",
                f"python -c \"from openai import OpenAI; print(OpenAI().files.create(file=open('{filename}', 'rb'), "
                f"purpose='fine-tune').id)\"",
            ),
        ]
    return [
        Step(
            "Unpack and search",
            f"unzip {filename} -d opensync-sessions\ngrep -rl 'TypeError' opensync-sessions/sessions | head",
            "manifest.json lists every file; README.txt says how the export was made.",
        )
    ]


def readme(fmt: Format, options: Options, filename: str, report) -> str:
    """README.txt of the zip export."""
    from .export import warning_lines  # export imports this module (the zip's README)

    lines = [
        "OPENSYNC EVAL EXPORT",
        "",
        f"Sessions: {report.sessions - report.skipped} (left out: {report.skipped})",
        f"Test cases (exchanges): {report.records}",
        f"Content hash (sha256 of the records): {report.content_hash}",
        "",
        "Layout",
        "  manifest.json: export metadata, counts per agent, models and the list of files",
        "  sessions/session-<full session id>.txt: one session per file, its messages in order,",
        "    tool calls as [TOOL_CALL: name] {arguments} and [TOOL_RESULT: name] under the assistant message",
        "",
        "Options",
        f"  include tool calls: {options.include_tools}, include system prompts: {options.include_system}",
        f"  anonymize paths: {options.anonymize_paths}, redact secrets: {options.redact_secrets}",
        f"  minimum message length: {options.min_length}, code blocks only: {options.code_blocks_only}",
    ]
    warnings = warning_lines(report.warnings)
    if warnings:
        lines += ["", "Warnings", *(f"  {line}" for line in warnings)]
    lines += ["", "What's next"]
    for step in steps(fmt, options, filename):
        lines += [f"  {step.title}:", *(f"    {line}" for line in step.code.splitlines())]
        if step.note:
            lines.append(f"    ({step.note})")
    return "\n".join(lines) + "\n"
