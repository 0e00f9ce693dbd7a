# The training runs in another Python of the same interpreter, started with
# subprocess.run([sys.executable, ...]); its finding is expected in that file.
# runs: children/train_no_zero.py
# child processes: 1
import os
import subprocess
import sys

child = os.path.join(os.path.dirname(os.path.abspath(__file__)), "children", "train_no_zero.py")
subprocess.run([sys.executable, child], check=True)
