"""The `textflow` command line.

    textflow run [--config FILE] [--data PATH] [--format csv|tsv|jsonl|txt] ...

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
    run.add_argument("--config", metavar="FILE", help="YAML config; only the keys it changes are needed")
    run.add_argument("--data", metavar="PATH", help="input file (or glob); default: the embedded IMDB sample")
    run.add_argument("--format", choices=["csv", "tsv", "jsonl", "txt"], help="input format")
    run.add_argument("--text-column", metavar="NAME", help="column (or JSON field) holding the text")
    run.add_argument("--label-column", metavar="NAME", help="label column: train classifiers of it instead of language models")
    run.add_argument("--tokenizer", choices=["char", "word"], help="token unit")
    run.add_argument("--sequence-length", type=int, metavar="N", help="model positions per example")
    run.add_argument("--models", metavar="LIST", help="comma-separated model families, e.g. rnn")
    run.add_argument("--workspace", metavar="DIR", help="pipeline root and ML Metadata (default ./workspace)")
    run.add_argument("--serving-dir", metavar="DIR", help="where blessed models are pushed (default ./serving)")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other config key, e.g. --set rnn.train_steps=500 --set evaluation.max_cross_entropy=2.5",
    )
    run.add_argument("--verbose", action="store_true", help="show TFX/TensorFlow logging instead of writing it to the log file")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    from pipeline.config import ConfigError

    flags = {
        "data.path": args.data,
        "data.format": args.format,
        "data.text_column": args.text_column,
        "data.label_column": args.label_column,
        "transform.tokenizer": args.tokenizer,
        "transform.sequence_length": args.sequence_length,
        "models": [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None,
        "workspace": args.workspace,
        "serving_dir": args.serving_dir,
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
    from components.data_gate import DataValidationError
    from components.text_readers import InputDataError
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


def _run(args: argparse.Namespace) -> int:
    from pipeline.config import ConfigError, data_path, load_config
    from pipeline.console import new_log_path, output_to_log

    try:
        config = load_config(args.config, _overrides(args))
    except ConfigError as err:
        print(_paragraph("textflow: configuration error: ", str(err)), file=sys.stderr)
        return EXIT_CONFIG

    log_path = new_log_path(config.workspace)
    skipped = [f for f in config.models if f not in config.trained_families]
    print(
        f"textflow: pipeline '{config.name}' on {data_path(config)}\n"
        f"  {config.data.format}, text column '{config.data.text_column}', {config.transform.tokenizer} tokens, "
        f"models: {', '.join(config.trained_families)}"
        + (f" ({', '.join(skipped)}: no classifier mode, not trained)" if skipped else "")
        + "\n"
        f"  workspace {os.path.abspath(config.workspace)}, serving {os.path.abspath(config.serving_dir)}\n"
        f"  log {log_path}",
        flush=True,
    )
    started = time.monotonic()
    with output_to_log(log_path, args.verbose) as terminal:
        try:
            # TensorFlow and TFX start here, inside the redirect, so their start-up noise is logged.
            from pipeline.run_local import run_pipeline
            from pipeline.summary import family_results, format_summary

            run_pipeline(config, terminal.out)
            summary = format_summary(family_results(config))
        except Exception as err:
            return _report_failure(err, log_path, terminal.err)
    print(summary)
    print(f"\nFinished in {time.monotonic() - started:.0f}s. Artifacts: {os.path.abspath(config.pipeline_root)}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args)
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
