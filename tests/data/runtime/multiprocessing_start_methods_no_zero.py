# The same training, without a zero, in a multiprocessing child started with
# each start method: fork, spawn and forkserver.
# runs: children/train_no_zero.py
# child processes: 3
import multiprocessing

from children.train_no_zero import train

if __name__ == "__main__":
    for method in ("fork", "spawn", "forkserver"):
        child = multiprocessing.get_context(method).Process(target=train)
        child.start()
        child.join()
        assert child.exitcode == 0, (method, child.exitcode)
