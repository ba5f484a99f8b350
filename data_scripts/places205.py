#!/usr/bin/env python
"""Places205 test set (S4): a seeded subset in DEST/train and DEST/valid.

The same as `colorize-data places205` (the command installed with the package); the code lives in
colorize_nbdev.datasets (nbs/95_datasets.ipynb). All options: python data_scripts/places205.py --help. Example:
  python data_scripts/places205.py --dest ~/colorize_data/places205 --n-valid 1000
"""
import sys
from pathlib import Path

try: from colorize_nbdev.datasets import dataset_cli
except ImportError:                  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from colorize_nbdev.datasets import dataset_cli

if __name__ == '__main__':
    sys.exit(dataset_cli('places205'))
