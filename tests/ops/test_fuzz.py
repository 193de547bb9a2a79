"""The fuzz target (tests/fuzz_ops.py) for a bounded time: random op sequences in a subprocess
must never crash, hang or raise an undocumented exception type.

CI runs the same seeds every time (from 0), up to 500 sequences or 20 seconds, whichever comes
first. For a long run: ``python tests/fuzz_ops.py --seconds 600 --seed N``.
"""
import fuzz_ops

SEQUENCES = 500
SECONDS = 20.0


def test_fuzz_op_sequences():
    ran, failures = fuzz_ops.run_fuzz(first_seed=0, max_sequences=SEQUENCES, seconds=SECONDS,
                                      line_timeout=60.0, max_failures=3)
    assert ran > 0
    assert not failures, (f"{len(failures)} of {ran} fuzzed sequences failed:\n\n"
                          + "\n".join(f.report() for f in failures))
