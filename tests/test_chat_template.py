"""`--chat-template`: each prompt goes to the models as one user message through the target tokenizer's chat template
(what a chat/instruct model is served with); without it, the prompt text as is. Greedy speculative output still
equals the baseline's, and a tokenizer without a template, or a template that refuses, is one clear line."""

from __future__ import annotations

import json
import shutil

import pytest
from transformers import AutoTokenizer

from workbench import trace
from workbench.cli import main
from workbench.config import RunConfig
from workbench.report_index import workload
from workbench.runner import config_diff
from workbench.sweep import expand, grid_hash, run_config_for
from workbench.sweep_file import load_spec

# a small template in the usual shape: role markers around each message, the assistant's turn opened at the end
TEMPLATE = ("{% for m in messages %}<eos>[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}[assistant] {% endif %}")


def _with_template(src, dst, template=TEMPLATE):
    """A copy of a model directory whose tokenizer carries ``template``."""
    shutil.copytree(src, dst)
    tok = AutoTokenizer.from_pretrained(dst, local_files_only=True)
    tok.chat_template = template
    tok.save_pretrained(dst)
    return dst


def _expand(**settings):
    """The runs of a one-γ sweep with these [settings]."""
    from workbench.sweep_file import SweepSpec

    return expand(SweepSpec(path=None, grid={"gamma": [2]}, settings=settings))


def _args(target, draft, prompts, out, *extra):
    return ["run", "--target", str(target), "--draft", str(draft), "--prompts", str(prompts), "--out", str(out),
            "--max-new-tokens", "10", "--no-progress", "--baseline", *extra]


def test_prompts_go_through_the_chat_template_and_greedy_still_equals_the_baseline(model_dirs, prompts_file, tmp_path):
    target = _with_template(model_dirs["target"], tmp_path / "chat-target")
    out = tmp_path / "run"
    assert main(_args(target, model_dirs["draft_prefix"], prompts_file, out, "--chat-template")) == 0
    t = trace.load(out)
    assert t.meta["config"]["chat_template"] is True and t.requests["warmup"].sum() == 2
    tok = AutoTokenizer.from_pretrained(target, local_files_only=True)
    prompts = {p["id"]: p["prompt"] for p in map(json.loads, prompts_file.read_text().splitlines())}
    for _, r in t.requests.iterrows():  # the warm-ups too: they run the first prompt through the template
        text = f"<eos>[user] {prompts[r['prompt_id']]}\n[assistant] "  # the template, rendered by hand
        assert list(r["prompt_token_ids"]) == tok(text, add_special_tokens=False)["input_ids"]
        assert list(r["prompt_token_ids"]) != tok(prompts[r["prompt_id"]])["input_ids"]
    out_ids = t.requests[~t.requests["warmup"]].set_index("request_id")["output_token_ids"].map(list)
    for p in prompts:
        assert out_ids[f"{p}/draft_prefix/constant:4"] == out_ids[f"{p}/baseline"]
    # off (the default), the same target reads the prompt text as it is
    plain = tmp_path / "plain"
    assert main(_args(target, model_dirs["draft_prefix"], prompts_file, plain, "--no-warmup")) == 0
    p = trace.load(plain).requests.iloc[0]
    assert list(p["prompt_token_ids"]) == tok(prompts[p["prompt_id"]])["input_ids"]
    assert workload(t).endswith("through the target's chat template")
    assert workload(trace.load(plain)).endswith("given to the models as they are")


@pytest.mark.parametrize("template, message", [
    (None, "has no chat template; run without --chat-template"),
    ("{{ raise_exception('only system messages, please') }}",
     "chat template failed on prompt 'a': TemplateError: only system messages, please"),
])
def test_a_missing_or_refusing_template_is_one_line(model_dirs, prompts_file, tmp_path, capsys, template, message):
    target = _with_template(model_dirs["target"], tmp_path / "t", template) if template else model_dirs["target"]
    assert main(_args(target, model_dirs["draft_prefix"], prompts_file, tmp_path / "run", "--chat-template")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --chat-template: ") and message in err and "\n" not in err
    assert not (tmp_path / "run").exists()  # refused before anything is written


def test_a_run_recorded_before_the_setting_existed_resumes_with_it_off():
    old = RunConfig().as_dict()
    del old["chat_template"]  # meta.json of an older workbench
    assert config_diff(old, RunConfig()) == []
    assert config_diff(old, RunConfig(chat_template=True)) == ["chat_template"]


# grid_hash of `[grid] gamma = [2, 4]` computed by the workbench before chat_template existed (commit e4723b7)
OLD_GRID_HASH = "d87dda65303715f1"


def test_a_sweep_sets_it_for_every_run_and_an_older_sweep_keeps_its_identity(tmp_path):
    sweep = tmp_path / "s.toml"
    sweep.write_text('[grid]\ngamma = [2, 4]\n')
    plans = expand(load_spec(sweep))
    assert all("chat_template" not in p.point and not run_config_for(p.point).chat_template for p in plans)
    assert grid_hash(plans) == OLD_GRID_HASH  # a sweep directory made before the setting existed reruns
    sweep.write_text('[grid]\ngamma = [2, 4]\n[settings]\nchat_template = false\n')  # the default, spelled out
    assert grid_hash(expand(load_spec(sweep))) == OLD_GRID_HASH
    sweep.write_text('[grid]\ngamma = [2, 4]\n[settings]\nchat_template = true\n')
    plans = expand(load_spec(sweep))
    assert all(run_config_for(p.point).chat_template for p in plans) and grid_hash(plans) != OLD_GRID_HASH
    sweep.write_text('[grid]\ngamma = [2, 4]\n[settings]\nchat_template = "yes"\n')
    with pytest.raises(Exception, match=r"s.toml:4: \[settings\] chat_template: expected bool"):
        load_spec(sweep)


def test_a_run_made_before_the_setting_is_not_a_chat_template_run_of_a_sweep():
    from workbench.sweep_check import settings_diff

    plan = next(p for p in _expand(chat_template=True) if p.kind == "speculative")
    old = run_config_for({k: v for k, v in plan.point.items() if k != "chat_template"}).as_dict()
    del old["chat_template"]  # meta.json of an older workbench: that run read its prompts as they are
    assert settings_diff(old, plan.point) == ["chat_template false in the run, true in the manifest"]
    assert settings_diff(old, {k: v for k, v in plan.point.items() if k != "chat_template"}) == []


def test_a_system_prompt_goes_before_each_prompt_and_needs_the_chat_template(model_dirs, prompts_file, tmp_path,
                                                                             capsys):
    target = _with_template(model_dirs["target"], tmp_path / "chat-target")
    out, system = tmp_path / "run", "Answer in one short sentence."
    assert main(_args(target, model_dirs["draft_prefix"], prompts_file, out, "--chat-template", "--no-warmup",
                      "--system-prompt", system)) == 0
    t = trace.load(out)
    assert t.meta["config"]["system_prompt"] == system
    tok = AutoTokenizer.from_pretrained(target, local_files_only=True)
    prompts = {p["id"]: p["prompt"] for p in map(json.loads, prompts_file.read_text().splitlines())}
    assert workload(t) == (f"prompts {prompts_file.name}: {len(prompts)} prompts, 10 new tokens at most (EOS ends a "
                           f"request), given to the models through the target's chat template, after the system "
                           f"message {system!r}")  # the report's headline says how the prompts went in
    for _, r in t.requests.iterrows():
        text = f"<eos>[system] {system}\n<eos>[user] {prompts[r['prompt_id']]}\n[assistant] "  # rendered by hand
        assert list(r["prompt_token_ids"]) == tok(text, add_special_tokens=False)["input_ids"]
    out_ids = t.requests.set_index("request_id")["output_token_ids"].map(list)
    assert all(out_ids[f"{p}/draft_prefix/constant:4"] == out_ids[f"{p}/baseline"] for p in prompts)
    # without --chat-template a system prompt has nowhere to go: one line, before anything is written
    no = _args(target, model_dirs["draft_prefix"], prompts_file, tmp_path / "no", "--system-prompt", system)
    capsys.readouterr()  # forget the first run's output (on a busy machine it may warn that its clock was disturbed)
    assert main(no) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --system-prompt needs --chat-template") and "\n" not in err
    assert not (tmp_path / "no").exists()


def test_a_template_without_a_system_role_says_the_system_prompt_is_why(model_dirs, prompts_file, tmp_path, capsys):
    refuses = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
               "{% endif %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}")
    target = _with_template(model_dirs["target"], tmp_path / "t", refuses)
    assert main(_args(target, model_dirs["draft_prefix"], prompts_file, tmp_path / "run", "--chat-template",
                      "--system-prompt", "Be brief.")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --chat-template: ") and "\n" not in err
    assert "on prompt 'a' (some templates take no system message): TemplateError: System role not" in err


def test_a_sweep_sets_a_system_prompt_for_every_run_only_with_the_chat_template(tmp_path):
    sweep = tmp_path / "s.toml"
    sweep.write_text('[grid]\ngamma = [2, 4]\n[settings]\nsystem_prompt = ""\n')  # the default, spelled out
    assert grid_hash(expand(load_spec(sweep))) == OLD_GRID_HASH
    sweep.write_text('[grid]\ngamma = [2, 4]\n[settings]\nchat_template = true\nsystem_prompt = "Be brief."\n')
    assert all(run_config_for(p.point).system_prompt == "Be brief." for p in expand(load_spec(sweep)))
    sweep.write_text('[grid]\ngamma = [2, 4]\n[settings]\nsystem_prompt = "Be brief."\n')
    with pytest.raises(Exception, match=r"s.toml:4: \[settings\] system_prompt needs chat_template = true"):
        load_spec(sweep)
    old = RunConfig(chat_template=True).as_dict()
    del old["system_prompt"]  # meta.json of an older workbench: no system message
    assert config_diff(old, RunConfig(chat_template=True)) == []
    assert config_diff(old, RunConfig(chat_template=True, system_prompt="Be brief.")) == ["system_prompt"]


CONVERSATION = [{"role": "system", "content": "You continue stories."},
                {"role": "user", "content": "Once upon a time"},
                {"role": "assistant", "content": "there was a king."},
                {"role": "user", "content": "Go on."}]


def test_a_conversation_goes_through_the_chat_template_whole(model_dirs, prompts_file, tmp_path, capsys):
    target = _with_template(model_dirs["target"], tmp_path / "chat-target")
    chats = tmp_path / "chats.jsonl"
    chats.write_text(json.dumps({"id": "c1", "category": "chat", "messages": CONVERSATION}) + "\n" +
                     json.dumps({"id": "p1", "prompt": "A plain prompt"}) + "\n")  # a plain line beside it
    out = tmp_path / "run"
    assert main(_args(target, model_dirs["draft_prefix"], chats, out, "--chat-template", "--no-warmup")) == 0
    req = trace.load(out).requests.set_index("request_id")
    tok = AutoTokenizer.from_pretrained(target, local_files_only=True)
    by_hand = "".join(f"<eos>[{m['role']}] {m['content']}\n" for m in CONVERSATION) + "[assistant] "
    assert list(req.loc["c1/baseline", "prompt_token_ids"]) == tok(by_hand, add_special_tokens=False)["input_ids"]
    assert list(req.loc["p1/baseline", "prompt_token_ids"]) == tok("<eos>[user] A plain prompt\n[assistant] ",
                                                                   add_special_tokens=False)["input_ids"]
    for p in ("c1", "p1"):
        assert list(req.loc[f"{p}/draft_prefix/constant:4", "output_token_ids"]) == \
            list(req.loc[f"{p}/baseline", "output_token_ids"])
    # without the template a conversation has no text to give: refused, not cut to its last message
    capsys.readouterr()
    assert main(_args(target, model_dirs["draft_prefix"], chats, tmp_path / "plain")) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: prompt 'c1' is a conversation (messages), which goes to the models through their chat "
                   "template: add --chat-template ([settings] chat_template = true in a sweep file)")
    assert not (tmp_path / "plain").exists()
    # a conversation with its own system message and --system-prompt: which one was meant is not guessed
    assert main(_args(target, model_dirs["draft_prefix"], chats, tmp_path / "both", "--chat-template",
                      "--system-prompt", "Be brief.")) == 2
    assert capsys.readouterr().err.strip().startswith("error: --system-prompt: prompt 'c1' is a conversation with a "
                                                      "system message of its own")


@pytest.mark.parametrize("line, message", [
    ({"id": "x", "messages": []}, "messages: expected a non-empty list"),
    ({"id": "x", "messages": "hi"}, "messages: expected a non-empty list"),
    ({"id": "x", "messages": [{"role": "bot", "content": "hi"}]}, "messages[0]: expected {\"role\": 'system' | "),
    ({"id": "x", "messages": [{"role": "user", "content": " "}]}, "messages[0]: expected"),
    ({"id": "x", "messages": CONVERSATION[:3]}, "the last message must be the user's (the models answer it), not "
                                                "'assistant'"),
    ({"id": "x", "prompt": "p", "messages": CONVERSATION}, "give prompt or messages, not both"),
    ({"id": "x"}, "missing prompt (or messages, a conversation)"),
])
def test_a_malformed_conversation_is_one_line_naming_its_line(tmp_path, line, message):
    from workbench.errors import WorkbenchError
    from workbench.prompts import load_prompts

    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"id": "ok", "prompt": "fine"}) + "\n" + json.dumps(line) + "\n")
    with pytest.raises(WorkbenchError) as err:
        load_prompts(path)
    assert str(err.value).startswith(f"{path}:2: ") and message in str(err.value) and "\n" not in str(err.value)


def test_the_bundled_chat_set_is_conversations_in_the_general_set_s_categories():
    from workbench import paths
    from workbench.prompts import load_prompts

    chats, general = (load_prompts(paths.prompts_path(name)) for name in ("chat", "general"))
    assert len(chats) == 14 and all(p.messages and p.messages[-1][0] == "user" for p in chats)
    assert {p.category for p in chats} == {p.category for p in general}
    # mostly multi-turn (an earlier answer in the context: what a single prompt cannot test), some with a system turn
    assert sum(any(r == "assistant" for r, _ in p.messages) for p in chats) >= 8
    assert any(p.messages[0][0] == "system" for p in chats)
