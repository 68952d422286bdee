"""What the families are built from and share: Transformer blocks, the fast LSTM, losses, the token layout and tokenizers, the encoder-decoders' common parts, denoising noise."""
