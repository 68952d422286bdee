"""CLI arguments that the end-to-end tests share."""

# precision and jit_compile fixed: the timed trial of `auto` (a minute or two per family, once
# per machine and shape) runs in test_end_to_end's shared run and in test_acceleration_trial.py,
# where it is asserted; the other pipeline runs train their tiny models in float32 without it
FIXED_ACCELERATION = [
    arg for family in ("rnn", "transformer", "hvae")
    for arg in ("--set", f"{family}.precision=float32", "--set", f"{family}.jit_compile=false")
]
