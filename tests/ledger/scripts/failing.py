"""A training script with a bug: it fails with an exception."""

from ledger import Run

run = Run.get_context()
run.log("loss", 0.5)
print("training...")
raise ValueError("bad training data")
