"""Renders every template here with every conversation as transformers' apply_chat_template does (Jinja2 with
trim_blocks, lstrip_blocks and loop controls in an immutable sandbox, its tojson and raise_exception), and writes
expected.json, which ChatTemplateTests compares slope's renderer against. Run: python3 make_expected.py"""
import json, pathlib
import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)

def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
here = pathlib.Path(__file__).parent
conversations = json.loads((here / "conversations.json").read_text())
tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather now",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
cases = []
for path in sorted(here.glob("*.jinja")):
    template = env.from_string(path.read_text())
    for name, messages in conversations.items():
        for add_generation_prompt in (False, True):
            case = {"template": path.name, "conversation": name, "add_generation_prompt": add_generation_prompt}
            try:
                case["output"] = template.render(messages=messages, add_generation_prompt=add_generation_prompt,
                                                 bos_token="<s>", eos_token="</s>", tools=tools)
            except Exception as error:
                case["error"] = f"{type(error).__name__}: {error}"
            cases.append(case)
(here / "expected.json").write_text(json.dumps({"tools": tools, "cases": cases}, indent=1, ensure_ascii=False) + "\n")
print(len(cases), "cases,", sum("error" in c for c in cases), "errors")
