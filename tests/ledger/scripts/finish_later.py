"""Keeps running for a while after its submitter has exited, then logs a metric."""

import time

from ledger import Run

run = Run.get_context()
time.sleep(1.5)
run.log("finished", 1)
print("finished")
