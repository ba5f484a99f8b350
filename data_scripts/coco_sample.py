#!/usr/bin/env python
"""fastai's COCO sample, placed where untar_data keeps it, and a seeded subset.

The same as `colorize-data coco-sample` (the command installed with the package); the code lives in
colorize_nbdev.datasets (nbs/95_datasets.ipynb). All options: python data_scripts/coco_sample.py --help. Example:
  python data_scripts/coco_sample.py --dest ~/colorize_data/coco --limit 10000
"""
import sys
from pathlib import Path

try: from colorize_nbdev.datasets import dataset_cli
except ImportError:                  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from colorize_nbdev.datasets import dataset_cli

if __name__ == '__main__':
    sys.exit(dataset_cli('coco-sample'))
