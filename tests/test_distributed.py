"""DDP under torchrun: two CPU processes (gloo) train one model through engine.fit."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from reprolib import distributed

SCRIPT = textwrap.dedent('''
    import json, os, sys
    import torch
    from torch import nn
    from reprolib import distributed, engine
    from reprolib.results import write_metrics

    out = sys.argv[1]
    seen = []

    class Data(torch.utils.data.Dataset):
        def __init__(self, n, offset):
            g = torch.Generator().manual_seed(offset)
            self.x = torch.randn(n, 6, generator=g)
            self.y = (self.x[:, 0] > 0).long()
            self.record = offset == 0
        def __len__(self):
            return len(self.x)
        def __getitem__(self, i):
            if self.record:
                seen.append(int(i))
            return {"x": self.x[i], "label": self.y[i]}

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(100 + distributed.rank())  # different starts: DDP must broadcast rank 0's
            self.body = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))
        def forward(self, batch):
            return self.body(batch["x"])

    model = Net()
    fit = engine.fit(model, Data(64, 0), Data(32, 1), epochs=3, lr=0.05, batch_size=16, seed=0,
                     checkpoint_dir=os.path.join(out, "ckpt"))
    write_metrics("ddp", {"rank": distributed.rank()}, folder=__import__("pathlib").Path(out))
    torch.save(model.state_dict(), os.path.join(out, f"weights{distributed.rank()}.pt"))
    with open(os.path.join(out, f"rank{distributed.rank()}.json"), "w") as fh:
        json.dump({"seen": seen, "history": [{k: r[k] for k in ("epoch", "val")} for r in fit.history],
                   "best_epoch": fit.best_epoch, "world": distributed.world_size()}, fh)
''')


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this PyTorch has no torch.distributed")
def test_two_processes_train_one_model(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(CUDA_VISIBLE_DEVICES="", TQDM_DISABLE="1", OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    # each process saw its own half of every epoch's training set, and together all of it
    per_epoch = [set(r["seen"][e * 32:(e + 1) * 32]) for r in ranks for e in range(3)]
    for e in range(3):
        assert not per_epoch[e] & per_epoch[3 + e] and per_epoch[e] | per_epoch[3 + e] == set(range(64))
    # yet the weights stayed synchronised: same validation scores, same best epoch, same final weights
    assert ranks[0]["history"] == ranks[1]["history"] and ranks[0]["best_epoch"] == ranks[1]["best_epoch"]
    w0, w1 = (torch.load(tmp_path / f"weights{r}.pt", weights_only=True) for r in (0, 1))
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    # rank 0 alone wrote the checkpoint and the results file
    assert (tmp_path / "ckpt" / "last.pt").exists()
    assert json.loads((tmp_path / "ddp.json").read_text())["metrics"] == {"rank": 0}


def test_single_process_is_not_distributed(monkeypatch):
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert not distributed.active() and distributed.is_main() and distributed.world_size() == 1
    distributed.init()  # a no-op
    assert not torch.distributed.is_initialized()
    with distributed.main_process_first():
        pass
    monkeypatch.setenv("RANK", "1")
    assert not distributed.is_main()
