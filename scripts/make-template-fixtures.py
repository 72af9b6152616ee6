#!/usr/bin/env python3
"""Render the chat-template fixtures with Python's jinja2, set up as transformers sets it up.

The Rust renderer (src/chat/template.rs) must match transformers' `apply_chat_template` byte for
byte. This script is the reference: it renders every template under tests/fixtures/templates/
(*.jinja, plus SmolLM2's real template from the shared model folder) with every conversation
under tests/fixtures/templates/conversations/, and writes what jinja2 produced, or the message
it raised, to tests/fixtures/templates/expected/<template>.json. tests/text/chat_template.rs renders
the same pairs in Rust and compares.

A template that never reads `tools` is only given conversations without tools: for those the
Rust side first rewrites the conversation into its generic tool format, which is tested apart.
A conversation that lists `templates` is only given to those. A template that reads
`enable_thinking` is also rendered with it set to true and to false, under `enable_thinking`.

Usage: pip install jinja2 && python3 scripts/make-template-fixtures.py
(APIGEN_SHARED points at the shared folder; the default is ../shared beside the crate.)
"""

import json
import os
import sys
from datetime import date
from pathlib import Path

import jinja2
from jinja2 import meta
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "templates"
PINNED_DATE = date(2024, 7, 26)

# The special-token strings each test template is rendered with.
TOKENS = {
    "hermes": ("<|endoftext|>", "<|im_end|>"),
    "llama3": ("<|begin_of_text|>", "<|eot_id|>"),
    "mistral": ("<s>", "</s>"),
    "qwen3": ("", "<|im_end|>"),
    "xlam": ("<|begin_of_text|>", "<|eot_id|>"),
}


def make_environment():
    """transformers' `_compile_jinja_template` environment."""

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return PINNED_DATE.strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def templates():
    """(name, source, bos, eos) for every template to render."""
    found = []
    for path in sorted(FIXTURES.glob("*.jinja")):
        bos, eos = TOKENS[path.stem]
        found.append((path.stem, path.read_text(encoding="utf-8"), bos, eos))
    shared = Path(os.environ.get("APIGEN_SHARED", ROOT.parent / "shared"))
    config_path = shared / "models" / "smollm2-135m-instruct" / "tokenizer_config.json"
    if config_path.exists():
        config = json.loads(config_path.read_text(encoding="utf-8"))
        found.append(("smollm2", config["chat_template"], config["bos_token"], config["eos_token"]))
    else:
        print(f"note: {config_path} is absent; expected/smollm2.json is left as it is", file=sys.stderr)
    return found


def has_tool_content(conversation):
    return bool(conversation["tools"]) or any(
        m["role"] == "tool" or m.get("tool_calls") for m in conversation["messages"]
    )


def main():
    env = make_environment()
    conversations = {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted((FIXTURES / "conversations").glob("*.json"))
    }
    (FIXTURES / "expected").mkdir(exist_ok=True)
    for name, source, bos, eos in templates():
        variables = meta.find_undeclared_variables(env.parse(source))
        reads_tools = "tools" in variables
        template = env.from_string(source)

        def render_all(**extra):
            cases = {}
            for stem, conversation in conversations.items():
                if not reads_tools and has_tool_content(conversation):
                    continue
                if name not in conversation.get("templates", [name]):
                    continue
                try:
                    output = template.render(
                        messages=conversation["messages"],
                        tools=conversation["tools"] or None,
                        add_generation_prompt=conversation["add_generation_prompt"],
                        bos_token=bos,
                        eos_token=eos,
                        **extra,
                    )
                    cases[stem] = {"output": output}
                except jinja2.exceptions.TemplateError as error:
                    cases[stem] = {"error": str(error)}
            return cases

        cases = render_all()
        expected = {
            "bos_token": bos,
            "eos_token": eos,
            "date": [PINNED_DATE.year, PINNED_DATE.month, PINNED_DATE.day],
            "supports_tools": reads_tools,
            "cases": cases,
        }
        if "enable_thinking" in variables:
            expected["enable_thinking"] = {
                json.dumps(flag): render_all(enable_thinking=flag) for flag in (True, False)
            }
        out = FIXTURES / "expected" / f"{name}.json"
        out.write_text(json.dumps(expected, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        print(f"{out.relative_to(ROOT)}: {len(cases)} cases")


if __name__ == "__main__":
    main()
