"""The task modes as the shared code sees them: each registered task has every hook, a task that
lacks one is refused when a config names it, and the registry resolves branches and names."""

import pytest

from pipeline.config import ConfigError, load_config
from tasks import registry
from tasks.base import HOOKS, Task, missing_hooks
from tasks.language_model import LanguageModel


def test_every_registered_task_has_every_hook():
    for name in [*registry.names(), "vae"]:
        assert missing_hooks(registry.get(name)) == [], name


class WithoutHeadline(LanguageModel):
    """A language model whose summary line nobody wrote."""

    name = "no_headline"
    headline = Task.headline


def test_a_task_that_lacks_a_hook_is_refused_when_the_config_is_loaded(monkeypatch):
    monkeypatch.setattr(registry, "_TASKS", dict(registry._TASKS))
    registry.register(WithoutHeadline())
    assert "no_headline" in registry.names() and "headline" in HOOKS
    with pytest.raises(ConfigError, match="task 'no_headline' lacks the hook 'headline'"):
        load_config(overrides={"task": "no_headline"})


def test_a_complete_new_task_loads_and_names_its_own_branches(monkeypatch):
    class Completion(LanguageModel):
        name = "completion"

        def branch_name(self, family: str) -> str:
            return f"{family}_{self.name}"

    monkeypatch.setattr(registry, "_TASKS", dict(registry._TASKS))
    registry.register(Completion())
    config = load_config(overrides={"task": "completion"})
    assert config.trained_families == ["rnn", "transformer", "hvae"]
    assert config.task_mode.branch_name("rnn") == "rnn_completion"


def test_the_registry_resolves_the_columns_the_branches_and_the_vae():
    assert registry.from_columns(load_config().data) == "language_model"
    assert registry.from_columns(load_config(overrides={"data.label_column": "label"}).data) == "classifier"
    assert registry.branch_task("language_model", "hvae").name == "vae"
    assert registry.branch_task("language_model", "rnn").name == "language_model"
    assert registry.of_branch("rnn_denoise").key_metrics == ("chrf",)
    assert registry.of_branch("hvae").name == "vae"
    assert "vae" not in registry.names()  # only ever the VAE family's branch of the language model
    with pytest.raises(registry.TaskError, match="unknown task 'tagging'"):
        registry.get("tagging")
