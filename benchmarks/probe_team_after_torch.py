"""The team a 2-thread training step gets right after PyTorch steps in the same process (a quiet machine).

    python benchmarks/probe_team_after_torch.py [--rounds 30]

Each round runs two PyTorch training steps of the MobileNet-style zoo net (``benchmarks/bench_zoo.py``, batch
64, 2 threads), then two minicnn steps of the same net under ``thread_limits(2, work)``, the machine's load
re-read before each (:func:`minicnn.threads._other_runnable_tasks`). It counts ``(team, others)`` pairs: on a
quiet machine a team of 1 means the rule read this process's own threads (PyTorch's OpenMP pool, still
spinning after its step) as another process's load. Reported, never asserted; the load average is printed.
"""

import argparse
import os
from collections import Counter

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args(argv)

    import torch

    from bench_zoo import NETS, _data, minicnn_model, torch_model
    from minicnn import threads

    net_tokens = NETS["MobileNet style"]
    clf = minicnn_model(net_tokens, 64)
    X, y = _data(64)
    model = torch_model(net_tokens)
    optimizer = torch.optim.Adam(model.parameters())
    xt, yt = torch.from_numpy(X).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(np.asarray(y))
    torch.set_num_threads(2)
    print(f"load average {os.getloadavg()[0]:.2f}")
    teams = Counter()
    for _ in range(args.rounds):
        for _ in range(2):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(xt), yt).backward()
            optimizer.step()
        threads._load_state["time"] = -1e9   # read the machine's load now
        for _ in range(2):
            with threads.thread_limits(2, clf.network_.training_work(64)) as n:
                teams[(n, threads._load_state["others"])] += 1
                clf.partial_fit(X, y)
    for (team, others), count in sorted(teams.items()):
        print(f"team {team}, others read {others}: {count} of {sum(teams.values())} steps")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
