"""A ported script that completes its own run, then goes on working a little."""

import time

from ledger import Run

run = Run.get_context()
run.log("accuracy", 0.9)
run.complete()
time.sleep(0.5)
with open("after_complete.txt", "w") as f:
    f.write(run.get_status())
