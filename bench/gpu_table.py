"""Shared by the GPU benchmark scripts (bench/score_gpu.py, encode_gpu.py,
attn_gpu.py): the peak device memory of a stage, sampled with nvidia-smi
(for our binaries, which are separate processes) or torch (for the peers), and
the one results table bench/gpu_check.sh prints: each script appends its rows
to $AF_TABLE (a markdown file) and prints them too.

With AF_BENCH_TINY=1 the scripts run tiny sizes on the CPU so that their logic
can be checked on a machine without a GPU (no number from that mode means
anything)."""
import os
import subprocess
import threading
import time

TINY = os.environ.get("AF_BENCH_TINY") == "1"
HEADER = ("| stage | ours | peer | speed ours/peer | floor or parity | peak MiB ours | peak MiB peer |\n"
          "|---|---|---|---|---|---|---|\n")


class PeakMem:
    """Peak device memory used (MiB, whole card) while the block runs, minus the
    level before it; nvidia-smi every 50 ms. 0 where nvidia-smi is missing."""

    def __enter__(self):
        self.peak, self.base, self._stop = 0, self._used(), False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _used(self):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits",
                                  "-i", "0"], capture_output=True, text=True, timeout=5).stdout
            return int(out.split()[0])
        except Exception:
            return 0

    def _run(self):
        while not self._stop:
            self.peak = max(self.peak, self._used())
            time.sleep(0.05)

    def __exit__(self, *a):
        self._stop = True
        self._t.join()
        self.peak = max(0, self.peak - self.base)


def torch_peak_mib(torch):
    if not torch.cuda.is_available():
        return 0
    return torch.cuda.max_memory_allocated() / 2**20


def row(stage, ours, peer, ratio, floor, peak_ours, peak_peer):
    fmt = lambda v: v if isinstance(v, str) else f"{v:.3g}"
    line = "| " + " | ".join(fmt(v) for v in (stage, ours, peer, ratio, floor, peak_ours, peak_peer)) + " |\n"
    path = os.environ.get("AF_TABLE")
    if path:
        new = not os.path.exists(path)
        with open(path, "a", encoding="utf-8") as f:
            if new:
                f.write(HEADER)
            f.write(line)
    print(line, end="", flush=True)
