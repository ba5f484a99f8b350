#!/usr/bin/env python
"""The course's 186 development photos, rebuilt from Debian packages.

The same as `colorize-data devphotos` (the command installed with the package); the code lives in
colorize_nbdev.datasets (nbs/95_datasets.ipynb). All options: python data_scripts/devphotos.py --help. Example:
  python data_scripts/devphotos.py --dest ~/colorize_data/devphotos
"""
import sys
from pathlib import Path

try: from colorize_nbdev.datasets import dataset_cli
except ImportError:                  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from colorize_nbdev.datasets import dataset_cli

if __name__ == '__main__':
    sys.exit(dataset_cli('devphotos'))
