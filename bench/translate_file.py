"""Scores a pushed translator on a file of sentence pairs through its `translate` signature.

    python -m bench.translate_file --model serving/textflow-transformer-seq2seq \
        --data ../shared/data/multi30k/test2016.jsonl [--source de --target en] [--beam-width 4]

`--model` is a model's serving folder (its newest version is scored) or one version's folder.
The SavedModel is loaded as TensorFlow Serving loads it, with no textflow code: only
`tensorflow`, `tensorflow_text` (its tokenizer ops) and `sacrebleu` are imported. Sources are
decoded in batches of similar length; prints one JSON line with sacreBLEU's corpus BLEU (13a
tokenizer) cased and lowercased, chrF, and the decoding rate.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import sacrebleu  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_text  # noqa: E402,F401  (registers the SentencePiece ops)

MAX_LENGTH = 256  # subwords; the model's own bound (from the source's length) is the one that acts


def read_pairs(path: str, source: str = "de", target: str = "en") -> list[tuple[str, str]]:
    """The file's (source, reference) pairs; a bad line stops with its file and line number."""
    pairs = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                pairs.append((str(row[source]), str(row[target])))
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise SystemExit(f"{path}:{number}: expected a JSON object with {source!r} and {target!r} text ({error})")
    if not pairs:
        raise SystemExit(f"{path}: no sentence pairs")
    return pairs


def scores(hypotheses: list[str], references: list[str], prefix: str = "") -> dict:
    """sacreBLEU corpus BLEU (13a; cased and lowercased) and chrF of detokenized text."""
    return {
        f"{prefix}bleu_cased": round(sacrebleu.corpus_bleu(hypotheses, [references]).score, 2),
        f"{prefix}bleu_lowercase": round(sacrebleu.corpus_bleu(hypotheses, [references], lowercase=True).score, 2),
        f"{prefix}chrf": round(sacrebleu.corpus_chrf(hypotheses, [references]).score, 2),
    }


def model_version(path: str) -> str:
    """`path` itself when it holds a SavedModel, else its newest numbered version."""
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    versions = sorted((int(name) for name in os.listdir(path) if name.isdigit()), reverse=True)
    if not versions:
        raise SystemExit(f"{path}: neither a SavedModel nor a folder of numbered versions")
    return os.path.join(path, str(versions[0]))


def translate_all(translate, sources: list[str], beam_width: int, batch_size: int) -> tuple[list[str], float]:
    """Translations in the sources' order and the rate in sentences per second."""
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    out = [""] * len(sources)
    started = time.perf_counter()
    for start in range(0, len(order), batch_size):
        members = order[start:start + batch_size]
        result = translate(source=tf.constant([sources[i] for i in members]), beam_width=tf.constant(beam_width),
                           max_length=tf.constant(MAX_LENGTH))
        for i, text in zip(members, result["translation"].numpy()):
            out[i] = text.decode("utf-8")
    return out, len(sources) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a model's serving folder, or one version's")
    parser.add_argument("--data", required=True, help="JSONL, one object per line with the source and target")
    parser.add_argument("--source", default="de")
    parser.add_argument("--target", default="en")
    parser.add_argument("--beam-width", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=50)
    args = parser.parse_args()
    pairs = read_pairs(args.data, args.source, args.target)
    sources, references = [s for s, _ in pairs], [t for _, t in pairs]
    path = model_version(args.model)
    translate = tf.saved_model.load(path).signatures["translate"]
    hypotheses, rate = translate_all(translate, sources, args.beam_width, args.batch_size)
    print(json.dumps({
        "bench": "translate_file",
        "model": path,
        "data": args.data,
        "pairs": len(sources),
        "beam_width": args.beam_width,
        **scores(hypotheses, references),
        "sentences_per_second": round(rate, 2),
    }))


if __name__ == "__main__":
    main()
