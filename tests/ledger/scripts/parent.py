"""The seed's parent.py: submits child.py three times as child runs, then waits for them."""

from ledger import Run, ScriptRunConfig, Workspace

ws = Workspace.from_config()
compute_target = ws.compute_targets["gpu-cluster"]

run = Run.get_context()

child_args = ["Apple", "Banana", "Orange"]
for arg in child_args:
    run.log("Status", f"Launching {arg}")
    child_config = ScriptRunConfig(source_directory=".", script="child.py",
                                   arguments=["--fruit", arg], compute_target=compute_target)
    # Starts the run asynchronously
    run.submit_child(child_config)

# Experiment will "complete" successfully at this point.
# Instead of returning immediately, block until child runs complete

for child in run.get_children():
    child.wait_for_completion()
run.log("children_done", len(list(run.get_children(status="Completed"))))
