"""The id layout every family shares: reserved ids first, then the TFT vocabulary, then OOV.

id 0 pads (and is masked out of every loss and metric), 1 starts a sequence, 2 ends it.
Vocabulary entry i gets id i + NUM_RESERVED; the single out-of-vocabulary bucket comes last.
"""

# TFT leaves tokens holding a line break out of a vocabulary file (one token per line), so the
# character tokenizer writes a newline as this symbol and decoding turns it back.
NEWLINE_SYMBOL = "\u2424"

PAD_ID = 0
BOS_ID = 1
EOS_ID = 2
NUM_RESERVED = 3


def model_vocab_size(tft_vocab_size: int) -> int:
    """Size of the model's embedding/softmax for a TFT vocabulary of `tft_vocab_size` tokens."""
    return NUM_RESERVED + tft_vocab_size + 1  # + the OOV bucket
