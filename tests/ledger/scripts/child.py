"""The seed's child.py: reads its --fruit and logs its parent's id (seen from inside)."""

import argparse

from ledger import Run

parser = argparse.ArgumentParser()
parser.add_argument("--fruit", required=True)
args = parser.parse_args()

## In child run script
child_run = Run.get_context()
if child_run.parent is not None:
    child_run.log("parent_id", child_run.parent.id)
child_run.log("fruit", args.fruit)
print(f"child {child_run.id}: {args.fruit}")
