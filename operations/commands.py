"""What the CLI's after-run commands answer (promote, rollback, report, predict, models list,
show and history), and the record and report a run keeps when it ends. Each command imports
only what it needs, so one that needs no TensorFlow (models history, rollback) does not start it."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

from pipeline.config import Config


def write_run_report(config: Config, record_folder: Optional[str]) -> Optional[str]:
    """The HTML report of the run just kept, in its folder; its path."""
    from operations.report import write_report

    return write_report(config, os.path.basename(record_folder))[1] if record_folder else None


def keep_blocked_run(config: Config) -> Optional[str]:
    """A run the data gate stopped still gets its record and report (they say why); their path."""
    try:
        from operations.results import data_validation
        from operations.run_record import keep_run_record
        from operations.summary import format_summary

        validation = data_validation(config)
        return write_run_report(config, keep_run_record(config, [], format_summary([], validation), validation))
    except Exception as err:  # the gate's own message matters more than a missing report
        print(f"textflow: the report of the stopped run could not be written ({type(err).__name__}: {err})", file=sys.stderr)
        return None


def answer(args: argparse.Namespace, config: Config, serving_dir: str) -> str:
    """What a command that starts no pipeline prints; PromotionError for what the user can fix."""
    from operations.promotion import PromotionError

    if args.command == "promote":
        from components.serving.serving_audit import hash_folder
        from operations.model_records import find_push
        from operations.promotion import promote
        from pipeline.metadata_connection import describe

        record = find_push(config, args.name, args.version)
        blessed = record is not None and record.blessed
        if not blessed and not (args.force and args.reason):
            raise PromotionError(
                f"{args.name} version {args.version} has no blessing in {describe(config)} (no run of this "
                f"workspace pushed it as blessed); to promote it anyway, give --force and --reason"
            )
        evaluation = hash_folder(record.evaluation_uri) if record and record.evaluation_uri else None
        reason = args.reason if blessed else f"forced, not blessed: {args.reason}"
        entry = promote(serving_dir, args.name, args.version, args.label, reason, evaluation)
        return f"{args.name}: {args.label} -> version {entry['version']} ({os.path.join(serving_dir, 'models.config')})"
    if args.command == "rollback":
        from operations.promotion import rollback

        entry = rollback(serving_dir, args.name, args.reason)
        return f"{args.name}: stable -> version {entry['version']} ({os.path.join(serving_dir, 'models.config')})"
    if args.command == "report":
        from operations.report import ReportError, write_report

        try:
            text, path = write_report(config, args.run, args.format, args.output)
        except ReportError as err:
            raise PromotionError(str(err)) from None
        return f"Report: {path}" if path else text
    if args.command == "predict":
        from operations.model_commands import predict

        return predict(config, serving_dir, args.name, args.version, args.label, args.text, args.text_column,
                       args.signature, args.signature_options)
    if args.models_command == "list":
        from operations.model_commands import list_models

        return list_models(config, serving_dir)
    if args.models_command == "show":
        from operations.model_commands import show_model

        return show_model(config, serving_dir, args.name, args.version)
    from components.serving.serving_audit import history

    entries = history(serving_dir, args.name)
    if not entries:
        return f"{args.name}: no pushes or promotions recorded in {serving_dir}"
    return "\n".join(
        f"{e['time']}  {e['user']}  {e['action']}{' ' + e['label'] if e['label'] else ''}  version {e['version']}"
        f"{'  (' + e['reason'] + ')' if e['reason'] else ''}"
        for e in entries
    )
