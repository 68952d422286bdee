"""The `textflow` command line.

    textflow run [--config FILE] [--data PATH] [--format csv|tsv|jsonl|txt|conllu] ...
    textflow report [--run latest|RUN_ID] [--format html|md|text] [--output PATH]
    textflow compile --target kubeflow --image IMAGE --pipeline-root URI --output FILE.yaml

Errors the user can fix (configuration, input data, data that fails validation) are printed
as one paragraph naming the file or key and the problem, with an exit code of their own;
anything else names the component that failed and the log that holds the traceback.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # Keras 2: before anything imports TensorFlow
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402
from typing import Any, Optional, Sequence, TextIO  # noqa: E402

import yaml  # noqa: E402

EXIT_CONFIG, EXIT_INPUT, EXIT_VALIDATION, EXIT_FAILED = 2, 3, 4, 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="textflow",
        description="End-to-end TFX pipeline for text: ingest, validate, transform, train, evaluate, push.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="run the pipeline locally (LocalDagRunner, SQLite ML Metadata, Beam DirectRunner)",
        description="Run the whole pipeline locally. With no options it runs on the embedded IMDB sample.",
    )
    _add_config_options(run)
    run.add_argument("--workspace", metavar="DIR", help="pipeline root and ML Metadata (default ./workspace)")
    run.add_argument("--serving-dir", metavar="DIR", help="where blessed models are pushed (default ./serving)")
    run.add_argument("--verbose", action="store_true", help="show TFX/TensorFlow logging instead of writing it to the log file")
    run.add_argument("--trainer-workers", type=int, metavar="N", help="train each family with N processes on this "
                     "machine (MultiWorkerMirroredStrategy over loopback; training.workers)")

    compile_ = commands.add_parser(
        "compile",
        help="compile the pipeline for Kubeflow Pipelines v2 (a KFP pipeline spec, YAML)",
        description="Compile the same pipeline `textflow run` builds, from the same config, into a KFP v2 pipeline "
        "spec with TFX's KubeflowV2DagRunner: every component runs in IMAGE, artifacts go under the pipeline root, "
        "and the data folder and each family's training arguments are pipeline parameters of the run.",
    )
    compile_.add_argument("--target", choices=["kubeflow"], required=True, help="the orchestrator")
    compile_.add_argument("--image", help="the pipeline image (make image); default: kubeflow.image in the config")
    compile_.add_argument("--pipeline-root", metavar="URI", help="artifacts of the cluster's runs, e.g. gs://bucket/textflow; "
                          "default: kubeflow.pipeline_root in the config")
    compile_.add_argument("--output", metavar="FILE.yaml", default="textflow-pipeline.yaml", help="the pipeline file to write")
    compile_.add_argument("--serving-dir", metavar="DIR", help="where --init-from models are looked up: the cluster's "
                          "serving directory mounted here, or a copy of it (default ./serving); the pipeline imports "
                          "the same versions from the cluster's (kubeflow.serving_dir)")
    compile_.add_argument("--trainer-workers", type=int, metavar="N", help="each Trainer trains as a TFJob of N "
                          "workers (one chief, N-1 workers; kubeflow.trainer's resources each; training.workers)")
    _add_config_options(compile_)

    promote = commands.add_parser(
        "promote",
        help="point a label (stable, canary) of a served model at a pushed version",
        description="Point a label of a served model at a pushed version and rewrite <serving_dir>/labels.json (the "
        "labels and stable history) and <serving_dir>/models.config (TensorFlow Serving's model config, built from "
        "them) atomically; the action goes to the audit log. A version the pipeline did not bless is refused unless "
        "--force and --reason are given. The name must be a model folder directly inside the serving directory.",
    )
    promote.add_argument("name", help="served model name, e.g. textflow-rnn")
    promote.add_argument("version", type=int, help="pushed version (a folder under <serving_dir>/<name>/)")
    promote.add_argument("--label", choices=["stable", "canary"], required=True)
    promote.add_argument("--reason", metavar="TEXT", help="why; kept in the audit log (required with --force)")
    promote.add_argument("--force", action="store_true", help="promote a version that is not blessed")
    rollback = commands.add_parser(
        "rollback",
        help="move the stable label of a served model back to its previous stable version",
        description="Move the stable label back to the previous stable version; rewrites labels.json and "
        "models.config and logs it.",
    )
    rollback.add_argument("name", help="served model name, e.g. textflow-rnn")
    rollback.add_argument("--reason", metavar="TEXT", help="why; kept in the audit log")
    models = commands.add_parser("models", help="what was pushed and promoted", description="What was pushed and promoted.")
    models_commands = models.add_subparsers(dest="models_command", required=True, metavar="SUBCOMMAND")
    models_list = models_commands.add_parser("list", help="every trained model: metrics, blessing, push, labels")
    models_show = models_commands.add_parser("show", help="everything known about one pushed model, with its lineage")
    models_show.add_argument("name", help="served model name, e.g. textflow-rnn")
    models_show.add_argument("version", type=int, help="pushed version")
    models_history = models_commands.add_parser("history", help="the audit log of one served model, oldest first")
    models_history.add_argument("name", help="served model name, e.g. textflow-rnn")
    predict = commands.add_parser(
        "predict",
        help="run a signature of a served model, as TensorFlow Serving would, and print its outputs",
        description="Load a pushed SavedModel (by version, by label, or the newest) with tf.saved_model.load and print "
        "what a signature (serving_default unless --signature) returns. Each input of the signature is an option "
        "named after it (max_new_tokens: --max-new-tokens), read from the SavedModel: the text input takes --text, "
        "other texts their own option (interpolate: --first, --second), a vector comma-separated numbers (decode: "
        "--z 0.1,0.2,...). Decoding settings left out default to greedy decoding of at most 40 tokens.",
    )
    predict.add_argument("name", help="served model name, e.g. textflow-rnn")
    which = predict.add_mutually_exclusive_group()
    which.add_argument("--version", type=int, help="pushed version (default: the newest)")
    which.add_argument("--label", choices=["stable", "canary"], help="the version a label points at")
    predict.add_argument("--signature", metavar="NAME",
                         help="the signature to run: serving_default, generate, translate, encode, decode, interpolate, ... "
                         "(default: translate for an encoder-decoder, else serving_default)")
    predict.add_argument("--text", help="the raw text (the signature's text input)")
    predict.add_argument("--text-column", metavar="NAME", help="the raw feature holding the text (default: the config's)")
    report = commands.add_parser(
        "report",
        help="the review report of a run: data, schema, anomalies, drift, models, pushes (HTML, Markdown or text)",
        description="Write the review report of a kept run: one self-contained HTML file (no network requests), or the "
        "same content as Markdown or plain text. HTML goes to <workspace>/runs/<run id>/report.html unless --output "
        "is given; Markdown and text go to standard output unless --output is given.",
    )
    report.add_argument("--run", default="latest", metavar="latest|RUN_ID", help="which run (default: the latest)")
    report.add_argument("--format", choices=["html", "md", "text"], default="html")
    report.add_argument("--output", metavar="PATH", help="file to write")
    for command in (promote, rollback, models_list, models_show, models_history, predict, report):
        command.add_argument("--config", metavar="FILE", help="the run's YAML config (for its workspace and serving dir)")
        command.add_argument("--workspace", metavar="DIR", help="the run's workspace (ML Metadata), default ./workspace")
        command.add_argument("--serving-dir", metavar="DIR", help="the serving directory, default ./serving")
        command.add_argument("--verbose", action="store_true", help="show library logging and warnings instead of "
                             "writing them to <workspace>/logs/")
    return parser


def _add_config_options(command: argparse.ArgumentParser) -> None:
    """The options that make up a run's config (shared by run and compile)."""
    from tasks.registry import names as task_names

    command.add_argument("--config", metavar="FILE", help="YAML config; only the keys it changes are needed")
    command.add_argument("--data", metavar="PATH", help="input file (or glob); default: the embedded IMDB sample")
    command.add_argument("--eval-data", metavar="PATH", help="the test split's own file (same format and columns): "
                         "the Evaluator judges and blesses on it; default: 10%% of --data, by hash")
    command.add_argument("--validation-data", metavar="PATH", help="the validation split's own file: early stopping "
                         "keeps the weights best on it; default: 10%% of --data, by hash")
    command.add_argument("--format", choices=["csv", "tsv", "jsonl", "txt", "conllu"], help="input format")
    command.add_argument("--text-column", metavar="NAME", help="column (or JSON field) holding the text; for seq2seq, "
                         "the source: several, comma-separated, are joined into one (question,context)")
    command.add_argument("--label-column", metavar="NAME", help="label column: train classifiers of it instead of language models")
    command.add_argument("--target-column", metavar="NAME", help="target column: train encoder-decoders from the text "
                         "column(s) to it (seq2seq: translation, summarisation, question answering)")
    command.add_argument("--tag-column", metavar="NAME", help="tag column: train taggers of it, one tag per token "
                         "(conllu: upos, xpos, deprel or a MISC key; jsonl: a list as long as the text column's)")
    command.add_argument("--task", choices=task_names(),
                         help="what to train (default: from the columns); denoise: encoder-decoders restoring "
                         "corrupted text (BART's pre-training)")
    command.add_argument("--tokenizer", choices=["char", "word", "subword"], help="token unit")
    command.add_argument("--sequence-length", type=int, metavar="N", help="model positions per example")
    command.add_argument("--models", metavar="LIST", help="comma-separated model families, e.g. rnn")
    command.add_argument("--init-from", action="append", metavar="MODEL[@VERSION|@LABEL]",
                         help="fine-tune: start the family of this pushed model from its weights, tokenizing with its "
                         "vocabulary (a language model -> a classifier); repeat for another family")
    command.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other config key, e.g. --set rnn.train_steps=500 --set evaluation.max_cross_entropy=2.5",
    )


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    from pipeline.config import ConfigError

    flags = {
        "data.path": args.data,
        "data.eval_path": args.eval_data,
        "data.validation_path": args.validation_data,
        "data.format": args.format,
        "data.text_column": args.text_column,
        "data.label_column": args.label_column,
        "data.target_column": args.target_column,
        "data.tag_column": args.tag_column,
        "task": args.task,
        "transform.tokenizer": args.tokenizer,
        "transform.sequence_length": args.sequence_length,
        "models": [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None,
        "training.init_from": args.init_from,
        "training.workers": getattr(args, "trainer_workers", None),
        "workspace": getattr(args, "workspace", None),
        "serving_dir": getattr(args, "serving_dir", None),
    }
    overrides = {key: value for key, value in flags.items() if value is not None}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def _paragraph(prefix: str, message: str) -> str:
    first, *rest = str(message).strip().splitlines() or [""]
    wrapped = textwrap.fill(f"{prefix}{first}", width=100, subsequent_indent="  ")
    return "\n".join([wrapped, *rest])


def _report_failure(err: Exception, log_path: str, stream: TextIO) -> int:
    """Prints a failed run's reason as one paragraph; returns the exit code for its kind."""
    from components.data.data_gate import DataValidationError
    from components.data.text_readers import InputDataError
    from pipeline.config import ConfigError

    if isinstance(err, ConfigError):
        print(_paragraph("textflow: configuration error: ", str(err)), file=stream, flush=True)
        return EXIT_CONFIG
    if isinstance(err, InputDataError):
        print(_paragraph("textflow: bad input data: ", f"{err} Nothing was trained or pushed."), file=stream, flush=True)
        return EXIT_INPUT
    if isinstance(err, DataValidationError):
        print(_paragraph("textflow: data validation failed: ", str(err)), file=stream, flush=True)
        print(f"Nothing was trained or pushed. Details: {log_path}", file=stream, flush=True)
        return EXIT_VALIDATION
    print(_paragraph("textflow: the run failed: ", f"{type(err).__name__}: {err}"), file=stream)
    print(f"The full traceback is in {log_path}", file=stream, flush=True)
    return EXIT_FAILED


def _columns(config: Any) -> str:
    """The columns a run reads, in words."""
    data = config.data
    text = " + ".join(f"'{c}'" for c in data.text_columns)
    if data.target_column:
        return f"source {text} -> target '{data.target_column}'"
    if data.tag_column:
        return f"tokens {text}, tag column '{data.tag_column}'"
    return f"text column {text}" + (f", label column '{data.label_column}'" if data.label_column else "")


def _run(args: argparse.Namespace) -> int:
    from pipeline.config import ConfigError, data_path, eval_data_path, load_config, validation_data_path
    from pipeline.console import new_log_path, output_to_log

    try:
        config = load_config(args.config, _overrides(args))
        from operations.pretrained import resolve_init_from

        start_from = resolve_init_from(config)
    except ConfigError as err:
        print(_paragraph("textflow: configuration error: ", str(err)), file=sys.stderr)
        return EXIT_CONFIG

    log_path = new_log_path(config.workspace)
    skipped = [f for f in config.models if f not in config.trained_families]
    print(
        f"textflow: pipeline '{config.name}' on {data_path(config)}"
        + (f", validated on {validation_data_path(config)}" if config.data.validation_path else "")
        + (f", tested on {eval_data_path(config)}" if config.data.eval_path else "") + "\n"
        f"  task {config.task}: {config.data.format}, {_columns(config)}, {config.transform.tokenizer} tokens, "
        f"models: {', '.join(config.trained_families)}"
        + (f" ({', '.join(skipped)}: no {config.task} mode, not trained)" if skipped else "")
        + "".join(f"\n  {family} starts from {start.name} version {start.version} (its {start.description['task']} "
                  f"weights, with this run's head)" for family, start in start_from.items())
        + "\n"
        f"  workspace {os.path.abspath(config.workspace)}, serving {os.path.abspath(config.serving_dir)}\n"
        f"  log {log_path}",
        flush=True,
    )
    started = time.monotonic()
    with output_to_log(log_path, args.verbose) as terminal:
        try:
            # TensorFlow and TFX start here, inside the redirect, so their start-up noise is logged.
            from operations.commands import write_run_report
            from operations.results import read_run
            from operations.run_record import keep_run_record
            from operations.summary import format_summary
            from pipeline.run_local import run_pipeline

            run_pipeline(config, terminal.out, start_from)
            results = read_run(config)
            summary = format_summary(results.families, results.data_validation)
            record = keep_run_record(config, results.families, summary, results.data_validation)
            report = write_run_report(config, record)
        except Exception as err:
            from operations.commands import keep_blocked_run

            # By name: importing components here could fail again if an import was what failed.
            blocked_report = keep_blocked_run(config) if type(err).__name__ == "DataValidationError" else None
            code = _report_failure(err, log_path, terminal.err)
            if blocked_report:
                print(f"The report of this run (data, findings, why it stopped): {blocked_report}", file=terminal.err, flush=True)
            return code
    print(summary)
    if record:
        print(f"\nBlessing decisions and this summary are kept in {record}")
    if report:
        print(f"Report: {report}")
    print(f"\nFinished in {time.monotonic() - started:.0f}s. Artifacts: {os.path.abspath(config.pipeline_root)}")
    return 0


def _compile(args: argparse.Namespace) -> int:
    """Writes the Kubeflow pipeline spec; the only output is one line per fact a user needs."""
    from pipeline.config import ConfigError, load_config

    try:
        config = load_config(args.config, _overrides(args))
        image = args.image or config.kubeflow.image
        root = args.pipeline_root or config.kubeflow.pipeline_root
        if not image:
            raise ConfigError("compile needs the pipeline image: --image IMAGE or kubeflow.image in the config")
        if not root:
            raise ConfigError("compile needs where the cluster keeps artifacts: --pipeline-root URI or kubeflow.pipeline_root")
        from operations.pretrained import resolve_init_from

        start_from = resolve_init_from(config)  # in --serving-dir: the cluster's, mounted, or a copy of it
        if not args.output.endswith((".yaml", ".yml")):
            raise ConfigError(f"--output {args.output}: the KFP pipeline package is YAML; give a .yaml file name")
    except ConfigError as err:
        print(_paragraph("textflow: configuration error: ", str(err)), file=sys.stderr)
        return EXIT_CONFIG
    import warnings

    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # nothing is trained: TensorFlow's start-up notices are noise here
    warnings.filterwarnings("ignore", category=FutureWarning)  # google-cloud's notices on import
    from pipeline.compile import compile_kubeflow, runtime_parameters

    pipeline = compile_kubeflow(config, image, root, args.output, start_from)
    print(f"textflow: compiled pipeline '{config.name}' for Kubeflow Pipelines v2 -> {os.path.abspath(args.output)}\n"
          f"  {len(pipeline.components)} components in image {image}, artifacts under {root}\n"
          f"  run parameters: " + ", ".join(f"{name}={p.default}" for name, p in sorted(runtime_parameters(pipeline).items())))
    workers = config.training.workers
    if workers > 1:
        print(f"  each Trainer: a TFJob of {workers} workers (1 Chief, {workers - 1} Worker) of the image, "
              f"in namespace {config.kubeflow.tfjob_namespace or 'of the Trainer pod'}")
    if start_from:
        from pipeline.kubeflow import serving_dir

        cluster = serving_dir(config, root).rstrip("/")
        print("  starts from: " + ", ".join(f"{family} <- {s.name} version {s.version} ({cluster}/{s.name}/{s.version})"
                                            for family, s in start_from.items()))
    return 0


def _promotion_command(args: argparse.Namespace) -> int:
    """Commands that start no pipeline: promote, rollback, models, predict and report read ML
    Metadata, the kept runs and the serving directory (promote and rollback also write it).

    Unless --verbose, library output (TensorFlow's start-up lines, warnings) goes to a log file
    in the workspace's `logs/` (or nowhere, when there is no workspace) and only the command's
    own lines reach the terminal. Each command imports only what it needs, so one that needs no
    TensorFlow (models history, rollback) does not start it."""
    from operations.commands import answer
    from operations.promotion import PromotionError, check_model_name, check_version
    from pipeline.config import ConfigError, load_config
    from pipeline.console import new_log_path, output_to_log

    overrides = {key: value for key, value in {"workspace": args.workspace, "serving_dir": args.serving_dir}.items() if value}
    try:
        config = load_config(args.config, overrides)
    except ConfigError as err:
        print(_paragraph("textflow: configuration error: ", str(err)), file=sys.stderr)
        return EXIT_CONFIG
    serving_dir = os.path.abspath(config.serving_dir)
    name = args.models_command if args.command == "models" else args.command
    log_path = new_log_path(config.workspace, name) if os.path.isdir(config.workspace) else os.devnull
    with output_to_log(log_path, args.verbose) as terminal:
        try:
            if getattr(args, "name", None) is not None:  # before anything is read or written
                check_model_name(serving_dir, args.name)
                if getattr(args, "version", None) is not None:
                    check_version(serving_dir, args.name, args.version)
            print(answer(args, config, serving_dir), file=terminal.out, flush=True)
        except PromotionError as err:
            print(_paragraph("textflow: ", str(err)), file=terminal.err, flush=True)
            return EXIT_CONFIG
        except Exception as err:  # not the user's to fix: one paragraph here, the traceback in the log
            import traceback

            traceback.print_exc()  # to the log file (the terminal with --verbose)
            print(_paragraph(f"textflow: {name} failed: ", f"{type(err).__name__}: {err}"), file=terminal.err)
            if log_path != os.devnull:
                print(f"The full traceback is in {log_path}", file=terminal.err)
            terminal.err.flush()
            return EXIT_FAILED
    return 0


def _signature_options(parser: argparse.ArgumentParser, extra: list[str]) -> dict[str, str]:
    """`predict`'s options beyond its own, `--max-new-tokens 20` or `--max-new-tokens=20`, as
    {"max_new_tokens": "20"}: the signature's inputs, checked once the SavedModel is loaded."""
    options, rest = {}, list(extra)
    while rest:
        flag = rest.pop(0)
        if not flag.startswith("--") or len(flag) < 3:
            parser.error(f"unrecognized argument {flag!r}")
        key, equals, value = flag[2:].partition("=")
        if not equals:
            if not rest:
                parser.error(f"{flag} needs a value")
            value = rest.pop(0)
        options[key.replace("-", "_")] = value
    return options


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "predict":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.signature_options = _signature_options(parser, extra) if args.command == "predict" else {}
    if args.command == "run":
        return _run(args)
    if args.command == "compile":
        return _compile(args)
    return _promotion_command(args)


if __name__ == "__main__":
    sys.exit(main())
