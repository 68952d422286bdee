"""The layout docs/architecture.md describes, checked: which room may import which, no import
circle between modules or between sibling packages, no long files, and task names only where
the tasks live."""

import ast
import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parent.parent
ROOMS = ("pipeline", "operations", "tasks", "components", "models")
# room -> the rooms its modules may import (besides itself); `pipeline.cli`, the entry, may import any
MAY_IMPORT = {
    "models": set(),
    "tasks": {"models"},
    "components": {"tasks", "models"},
    "pipeline": {"components", "tasks", "models"},
    "operations": {"pipeline", "components", "tasks", "models"},
}
# What the after-run operations read of the pipeline and the components: the config and the
# metadata store, and the small modules that read what a component wrote (never a component itself).
OPERATIONS_READ = {"pipeline.config", "pipeline.metadata_connection", "components.data.splits",
                   "components.data.validation_report", "components.serving.serving_check_report", "components.serving.serving_audit",
                   "components.training.metrics_file", "components.training.model_description",
                   "pipeline.fine_tuning"}
MAX_LINES = 450
TASK_NAME = re.compile(r"[\"'](language_model|classifier|seq2seq|denoise|tagger|vae)[\"']")
TASK_TEST = re.compile(r"task (==|!=|in|not in) ")


def project_modules() -> dict[str, pathlib.Path]:
    modules = {}
    for room in ROOMS:
        for path in (REPO / room).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(path: pathlib.Path, modules: dict[str, pathlib.Path]) -> set[str]:
    """The project modules a file imports, at the top or inside functions (not under TYPE_CHECKING)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_only(node):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.add(name if name in modules else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {name for name in found if name in modules}


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def room(module: str) -> str:
    return "pipeline.cli" if module == "pipeline.cli" else module.split(".")[0]


def cycle(graph: dict[str, set[str]]):
    """One import circle of `graph` as a list of nodes, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str):
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_each_room_imports_only_the_rooms_below_it():
    wrong = [f"{source} imports {target}" for source, targets in import_graph().items() for target in targets
             if room(source) != "pipeline.cli" and room(target) != room(source)
             and room(target) not in MAY_IMPORT[room(source)]]
    assert not wrong, "\n".join(wrong)


def test_the_after_run_operations_read_results_without_the_components_or_the_dag():
    wrong = [f"{source} imports {target}" for source, targets in import_graph().items() if room(source) == "operations"
             for target in targets if room(target) in ("pipeline", "components") and target not in OPERATIONS_READ]
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_itself_through_others():
    assert cycle(import_graph()) is None


def test_no_two_sibling_packages_import_each_other():
    """components/data, training, evaluation and serving; models/families, layers, serving and runtime."""
    graph: dict[str, set[str]] = {}
    for source, targets in import_graph().items():
        for target in targets:
            a, b = ".".join(source.split(".")[:2]), ".".join(target.split(".")[:2])
            if a != b and a.split(".")[0] == b.split(".")[0] in ("components", "models"):
                graph.setdefault(a, set()).add(b)
    assert cycle(graph) is None


def test_no_file_is_longer_than_the_limit():
    long = {str(path.relative_to(REPO)): n for path in project_modules().values()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long


def test_shared_code_asks_the_task_instead_of_naming_it():
    """Task names appear in the task modules and the registries; elsewhere at most a handful of
    lines (the defaults' comments), and no test of a task's name."""
    named, tested = [], []
    for name, path in project_modules().items():
        if name.startswith("tasks") or name == "models.registry":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            where = f"{path.relative_to(REPO)}:{number}: {line.strip()}"
            if TASK_NAME.search(line):
                named.append(where)
            if TASK_TEST.search(line):
                tested.append(where)
    assert len(named) <= 5, "\n".join(named)
    assert not tested, "\n".join(tested)
