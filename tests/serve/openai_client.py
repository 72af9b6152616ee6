"""Drives `apigen-mt serve` with the official `openai` client; prints `ok <check>` per check.

Usage: openai_client.py BASE_URL API_KEY
"""
import json
import sys

import openai

base_url, key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)
model = client.models.list().data[0].id
print("ok models")

chat = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "Say hello."}], max_tokens=12, seed=1, temperature=0.7
)
assert chat.choices[0].message.role == "assistant" and chat.choices[0].message.content, chat
assert chat.usage.completion_tokens > 0, chat.usage
again = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "Say hello."}], max_tokens=12, seed=1, temperature=0.7
)
assert again.choices[0].message.content == chat.choices[0].message.content, "same seed, same text"
print("ok chat")

completion = client.completions.create(model=model, prompt="The capital of France is", max_tokens=6, temperature=0, stop=["\n\n"])
assert completion.choices[0].text and completion.choices[0].finish_reason in ("stop", "length"), completion
print("ok completions")

pieces, finish, usage = [], None, None
stream = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "Count to five."}],
    max_tokens=16,
    seed=2,
    stream=True,
    stream_options={"include_usage": True},
    extra_body={"ignore_eos": True},
)
for chunk in stream:
    if chunk.usage:
        usage = chunk.usage
    for choice in chunk.choices:
        if choice.delta.content:
            pieces.append(choice.delta.content)
        finish = choice.finish_reason or finish
assert len(pieces) > 1 and finish == "length", (pieces, finish)
whole = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "Count to five."}], max_tokens=16, seed=2, extra_body={"ignore_eos": True}
)
assert "".join(pieces) == whole.choices[0].message.content, ("".join(pieces), whole.choices[0].message.content)
assert usage and usage.completion_tokens == whole.usage.completion_tokens, usage
text = "".join(c.choices[0].text for c in client.completions.create(model=model, prompt="One, two,", max_tokens=5, stream=True, seed=3))
assert text, "a streamed completion"
print("ok stream")

tools = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
called = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "What is the weather in Paris?"}],
    tools=tools,
    tool_choice="required",
    max_tokens=64,
    seed=4,
)
message = called.choices[0].message
assert called.choices[0].finish_reason == "tool_calls" and message.tool_calls, called
call = message.tool_calls[0]
assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments), call
answered = client.chat.completions.create(
    model=model,
    messages=[
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"},
    ],
    tools=tools,
    tool_choice="none",
    max_tokens=16,
    seed=5,
)
assert answered.choices[0].message.content is not None, answered
print("ok tools")

schema = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
structured = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "Describe a person as JSON."}],
    response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}},
    max_tokens=64,
    seed=6,
)
person = json.loads(structured.choices[0].message.content)
assert set(person) == {"name", "age"} and isinstance(person["age"], int), person
print("ok json_schema")

try:
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}], logprobs=True)
    raise AssertionError("logprobs should be refused")
except openai.BadRequestError as error:
    assert "logprobs" in str(error), error
try:
    openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0).models.list()
    raise AssertionError("a wrong key should be refused")
except openai.AuthenticationError:
    pass
print("ok errors")
