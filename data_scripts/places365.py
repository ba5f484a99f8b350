#!/usr/bin/env python
"""Places365 small images (S1): a seeded subset in DEST/train and DEST/valid.

The same as `colorize-data places365` (the command installed with the package); the code lives in
colorize_nbdev.datasets (nbs/95_datasets.ipynb). All options: python data_scripts/places365.py --help. Example:
  python data_scripts/places365.py --dest ~/colorize_data/places365 --limit 5000
"""
import sys
from pathlib import Path

try: from colorize_nbdev.datasets import dataset_cli
except ImportError:                  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from colorize_nbdev.datasets import dataset_cli

if __name__ == '__main__':
    sys.exit(dataset_cli('places365'))
