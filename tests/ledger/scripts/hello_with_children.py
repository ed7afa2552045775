"""The seed's hello_with_children.py: five child runs, made with child_run()."""

from ledger import Run

run = Run.get_context()
for c, _count in enumerate(range(5)):
    with run.child_run() as child:
        child.log(name="Hello from child run", value=c)
print("Hello from the parent run; 5 child runs created")
