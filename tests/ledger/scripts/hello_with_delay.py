"""The seed's hello_with_delay.py: says hello, then keeps running (a heartbeat every 0.1 s)
until it is canceled, or for at most 60 s."""

import os
import time

from ledger import Run

run = Run.get_context()
print(f"Hello from {run.id}, with a delay")
with open("hello_with_delay.pid.tmp", "w") as f:
    f.write(str(os.getpid()))
os.replace("hello_with_delay.pid.tmp", "hello_with_delay.pid")
for beat in range(600):
    with open("heartbeat.txt", "a") as f:
        f.write(f"{beat}\n")
    time.sleep(0.1)
