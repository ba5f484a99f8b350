"""Training-loader throughput: the batch pipeline of lesson 01 (`photo_dls`) vs a per-image scikit-image pipeline.

Both read JPEGs from a folder, take 256 px random resized crops with flips, and produce scaled (L, ab) batches of 32
with 2 worker processes:

* naive (like seed S4): the Dataset's `__getitem__` does PIL open, torchvision RandomResizedCrop + flip,
  `skimage.color.rgb2lab`, `norm_l`/`norm_ab`; PyTorch's default collate;
* batch (`colorize_nbdev.data.core.photo_dls`): workers decode, crop and flip to uint8; the main process converts the
  whole batch with `rgb_to_lab_norm` on `--device` (fastai `after_batch`), on a CPU on the cores the workers leave;
* batch_all_threads: the same, the conversion on all of torch's `--threads` threads;
* workers_only: the same workers, no conversion (the ceiling the workers allow).

Each round times one epoch of each pipeline, in alternation (worker start-up included for all). An epoch is the photo
list repeated `--repeat` times. Besides images/s (wall clock), it records CPU ms per image (this process and its
workers, user + system), which depends less on what else runs on a shared machine. Writes a JSON file with every
epoch's figures and the medians.

    python benchmarks/bench_loader.py --dir ../shared/photos/images --repeat 16 --out benchmarks/results/loader_cpu2_run1.json
"""
import argparse, json, os, platform, resource, statistics, sys, time
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image
from skimage.color import rgb2lab

from colorize_nbdev.color import norm_l, norm_ab, rgb_to_lab_norm
from colorize_nbdev.data.core import find_images, photo_dls, open_rgb, to_uint8_tensor, LabBatch
from colorize_nbdev.data.samples import sample_dir


class NaiveLabDataset(torch.utils.data.Dataset):
    "Per image, in the worker: PIL open -> random crop + flip -> skimage rgb2lab -> scaled (L, ab) float tensors."
    def __init__(self, files, size=256, min_scale=0.25):
        self.files = files
        self.tfm = T.Compose([T.RandomResizedCrop(size, scale=(min_scale, 1), antialias=True), T.RandomHorizontalFlip()])
    def __len__(self): return len(self.files)
    def __getitem__(self, i):
        img = self.tfm(Image.open(self.files[i]).convert('RGB'))
        lab = torch.from_numpy(rgb2lab(np.asarray(img)).astype(np.float32)).permute(2, 0, 1)
        return norm_l(lab[:1]), norm_ab(lab[1:])


def cpu_s():
    "CPU seconds (user + system) used so far by this process and its finished children (the epoch's workers)."
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def epoch(dl, device):
    "(images/s, CPU ms per image, images) of one full pass over `dl` (worker start-up included); checks the batches."
    c, t, n = cpu_s(), time.perf_counter(), 0
    for L, ab in dl:
        assert L.shape[1] == 1 and ab.shape[1] == 2 and L.dtype == torch.float32 and L.device.type == device.type
        n += len(L)
    if device.type == 'cuda': torch.cuda.synchronize()
    wall = time.perf_counter() - t
    time.sleep(0.2)   # let the workers exit, so that their CPU time is counted
    return n/wall, 1000*(cpu_s() - c)/n, n


def cpu_name():
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--dir', default=None, help='folder of photos (default: the bundled sample)')
    ap.add_argument('--size', type=int, default=256)
    ap.add_argument('--bs', type=int, default=32)
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--threads', type=int, default=2, help='torch threads of the main process')
    ap.add_argument('--repeat', type=int, default=4, help='an epoch is the photo list repeated this many times')
    ap.add_argument('--rounds', type=int, default=3, help='epochs of each pipeline, timed in alternation')
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--out', default=None, help='JSON file to write')
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    device = torch.device(a.device)
    folder = Path(a.dir) if a.dir else sample_dir()
    files = find_images(folder)
    ep_files = files*a.repeat

    # the two pipelines agree: same L and ab for the same crop (validation-style centre crop)
    x = to_uint8_tensor(open_rgb(files[0]).resize((a.size, a.size)))
    lab = torch.from_numpy(rgb2lab(x.permute(1, 2, 0).numpy()).astype(np.float32)).permute(2, 0, 1)
    L, ab = rgb_to_lab_norm(x[None])
    assert (L[0] - norm_l(lab[:1])).abs().max() < 1e-4 and (ab[0] - norm_ab(lab[1:])).abs().max() < 1e-4

    naive = torch.utils.data.DataLoader(NaiveLabDataset(ep_files, a.size), batch_size=a.bs, shuffle=True,
                                        num_workers=a.workers, drop_last=True)
    batch = photo_dls(ep_files, size=a.size, bs=a.bs, valid_pct=0, check=None, num_workers=a.workers, device=device).train
    # the conversion on all of torch's threads, competing with the workers (photo_dls caps it to the cores they leave)
    all_threads = batch.new(after_batch=LabBatch(ep_files, cpu_threads=None))
    # the same workers without the main-process conversion: the ceiling the workers alone allow
    workers_only = batch.new(after_batch=lambda b: (b[0][:, :1].float(), b[0][:, 1:].float()))
    names = ('naive', 'batch', 'batch_all_threads', 'workers_only')
    res, cpu = {k: [] for k in names}, {k: [] for k in names}
    for r in range(a.rounds):
        for name, dl in zip(names, (naive, batch, all_threads, workers_only)):
            ips, ms, n = epoch(dl, device)
            res[name].append(round(ips, 1)); cpu[name].append(round(ms, 2))
            print(f"round {r+1}: {name:17s} {ips:7.1f} img/s, {ms:5.2f} CPU ms/img ({n} images)", flush=True)
    med = {k: statistics.median(v) for k, v in res.items()}
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    load = os.getloadavg()
    out = dict(
        benchmark='loader', date=time.strftime('%Y-%m-%d %H:%M'), folder=str(folder), n_files=len(files),
        images_per_epoch=len(ep_files), size=a.size, bs=a.bs, workers=a.workers, main_threads=a.threads,
        device=str(device), rounds=a.rounds,
        machine=dict(cpu=cpu_name(), cores=os.cpu_count(), python=sys.version.split()[0], torch=torch.__version__,
                     gpu=torch.cuda.get_device_name(0) if device.type == 'cuda' else None),
        conversion_threads=batch.after_batch.cpu_threads,
        naive_img_s=res['naive'], batch_img_s=res['batch'], batch_all_threads_img_s=res['batch_all_threads'],
        batch_workers_only_img_s=res['workers_only'],
        cpu_ms_per_img=cpu, cpu_ms_per_img_median=cmed,
        round_speedups=[round(b/n, 2) for n, b in zip(res['naive'], res['batch'])],
        load_avg_at_end=[round(x, 2) for x in load],
        naive_median_img_s=med['naive'], batch_median_img_s=med['batch'],
        batch_all_threads_median_img_s=med['batch_all_threads'], workers_only_median_img_s=med['workers_only'],
        speedup_medians=round(med['batch']/med['naive'], 2),
        cpu_efficiency_ratio=round(cmed['naive']/cmed['batch'], 2))
    print(json.dumps({k: out[k] for k in ('naive_median_img_s', 'batch_median_img_s', 'speedup_medians',
                                          'cpu_ms_per_img_median', 'cpu_efficiency_ratio', 'load_avg_at_end')}))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(out, indent=1) + '\n')


if __name__ == '__main__': main()
